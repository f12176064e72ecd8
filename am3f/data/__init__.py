"""Stage 2, flow images to datasets: ``dataset`` (``FlowDataset``, the composite layout, the synthetic
default) and ``manifest`` (is my copy of the real set the one the tables were made on?)."""
