"""Figures: confusion matrices, SYNTHETIC labels, per-sample figures kept apart, flow pictures."""

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from am3f.protocol.metrics import confusion_matrix
from am3f.protocol.run_folder import load_run
from am3f.results import plots, writers


def test_confusion_figures_saved_png_pdf(run_dir, tmp_path):
    figs = plots.confusion_figures(run_dir, tmp_path / "figs")
    assert list(figs) == ["composite", "casme2", "smic"]
    for subset in figs:
        for ext in ("png", "pdf"):
            assert (tmp_path / "figs" / f"confusion_{subset}.{ext}").stat().st_size > 1000
    preds = load_run(run_dir).predictions
    cm, n_seeds = plots.confusion_counts(preds, "smic")
    smic = preds[preds.dataset == "smic"]
    assert n_seeds == 2 and (cm == confusion_matrix(smic.label, smic.pred)).all()


def test_synthetic_labelling(run_dir, tmp_path):
    cfg = json.loads((run_dir / "config.json").read_text())
    cfg["dataset"]["synthetic"] = True
    (run_dir / "config.json").write_text(json.dumps(cfg))
    run = load_run(run_dir)
    assert run.synthetic and "SYNTHETIC" in run.describe()
    fig = plots.confusion_figure(run.predictions, synthetic=True)
    assert "SYNTHETIC" in fig._suptitle.get_text()
    paths = writers.save_figure(fig, tmp_path, "cm", synthetic=True)
    assert [p.name for p in paths] == ["cm_synthetic.png", "cm_synthetic.pdf"]


def test_per_sample_figures_of_real_data_are_kept_apart(tmp_path):
    fig = plt.figure()
    real = writers.save_figure(fig, tmp_path, "gallery", per_sample=True)
    assert [p.relative_to(tmp_path).as_posix() for p in real] == ["per-sample/gallery.png", "per-sample/gallery.pdf"]
    assert "do not publish" in (tmp_path / writers.PER_SAMPLE_DIR / "README.md").read_text()
    synthetic = writers.save_figure(fig, tmp_path, "gallery", synthetic=True, per_sample=True)
    assert [p.relative_to(tmp_path).as_posix() for p in synthetic] == ["gallery_synthetic.png", "gallery_synthetic.pdf"]
    aggregate = writers.save_figure(fig, tmp_path, "confusion")
    assert aggregate[0] == tmp_path / "confusion.png"
    plt.close(fig)


def test_flow_colour_picture_encodes_direction():
    u = np.array([[1.0, -1.0, 0.0, 0.0]], dtype=np.float32)
    v = np.array([[0.0, 0.0, 1.0, 0.0]], dtype=np.float32)
    rgb = plots.flow_to_rgb(u, v)
    assert rgb.shape == (1, 4, 3) and rgb.dtype == np.uint8
    assert not np.array_equal(rgb[0, 0], rgb[0, 1])  # right and left differ in hue
    assert rgb[0, 3].tolist() == [255, 255, 255]  # no motion = white
