"""Stage 4, training one model or a group of models: the recipe (``recipe``), the loss (``losses``),
augmentation (``augment``), optimizer and schedule (``optim``), the fit itself (``fit``)."""
