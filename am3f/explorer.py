"""Browsing a run sample by sample: mistakes, one sample's predictions, a static view with the
class activation map (LayerCAM, am3f.gradcam) of each branch, and the ipywidgets explorer of notebook 08."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import AM3FError
from .plots import plot_scores
from .rundir import RunResult
from .writers import synthetic_caption


def misclassified(predictions: pd.DataFrame, seed: int | None = None) -> pd.DataFrame:
    """Rows whose prediction is wrong (optionally of one seed), most confident mistakes first."""
    p = predictions if seed is None else predictions[predictions.seed == seed]
    wrong = p[p["label"] != p["pred"]].copy()
    score_cols = [c for c in p.columns if c.startswith("score_")]
    if score_cols:
        wrong["confidence"] = wrong[score_cols].max(axis=1)
        wrong = wrong.sort_values("confidence", ascending=False)
    return wrong


def sample_predictions(predictions: pd.DataFrame, sample_id: str) -> pd.DataFrame:
    """Every seed's prediction and class scores for one sample (the explorer's table)."""
    rows = predictions[predictions["sample_id"] == sample_id]
    if rows.empty:
        raise AM3FError(f"sample {sample_id!r} is not in this run's predictions")
    return rows.reset_index(drop=True)


def explorer_view(run: RunResult, data, sample_id: str, model=None, show_cam: bool = True):
    """Static view of one sample: u, v, strain, its class scores per seed, and (with ``model``, the
    model of the fold that held this sample out) the class activation map of every branch (the default
    method of :mod:`am3f.gradcam`). Returns the figure."""
    import matplotlib.pyplot as plt

    idx = int(np.flatnonzero(data.sample_ids == sample_id)[0])
    rows = sample_predictions(run.predictions, sample_id)
    score_cols = [c for c in rows.columns if c.startswith("score_")]
    cams = None
    if model is not None and show_cam:
        from .gradcam import all_branch_maps

        cams = {k: v[0] for k, v in all_branch_maps(model, data.x[idx:idx + 1], int(rows["pred"].iloc[0])).items()}
    ncols = 4 + (len(cams) if cams else 0)
    fig, axes = plt.subplots(1, ncols, figsize=(2.3 * ncols, 2.6))
    for c, name in enumerate(("u", "v", "strain")):
        axes[c].imshow(data.x[idx, c], cmap="RdBu_r" if name != "strain" else "magma", vmin=0, vmax=1)
        axes[c].set_title(name, fontsize=9)
        axes[c].set_xticks([])
        axes[c].set_yticks([])
    mean_scores = rows[score_cols].mean().to_numpy()
    label = int(rows["label"].iloc[0])
    plot_scores(mean_scores, data.class_names, label, ax=axes[3],
                title=f"scores (mean of {len(rows)} seed(s))")
    if cams:
        for j, (name, cam) in enumerate(cams.items()):
            ax = axes[4 + j]
            ch = ("u", "v", "strain").index(name) if name in ("u", "v", "strain") else 0
            ax.imshow(data.x[idx, ch], cmap="gray")
            ax.imshow(cam, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            ax.set_title(f"LayerCAM {name}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    preds = ", ".join(f"seed {int(s)}: {data.class_names[int(p)]}" for s, p in zip(rows["seed"], rows["pred"]))
    title = (f"{sample_id} ({data.datasets[idx]}, subject {data.subjects[idx]}, fold {int(rows['fold'].iloc[0])}) — "
             f"true {data.class_names[label]}; predicted {preds}")
    fig.suptitle(synthetic_caption(title, run.synthetic), fontsize=9)
    fig.tight_layout()
    return fig


def explorer(run: RunResult, data, model_for_subject=None, cam_default: bool = False):
    """ipywidgets explorer: dataset -> subject -> sample, 'misclassified only', 'Grad-CAM'.

    ``model_for_subject(subject) -> model`` supplies the fold model for Grad-CAM (e.g. a cached
    :func:`am3f.notebook.fold_model`); without it no CAM is drawn.
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    preds = run.predictions
    seed0 = int(preds["seed"].min())
    by_sample = preds[preds.seed == seed0].set_index("sample_id")
    datasets = sorted(set(by_sample["dataset"]))
    ds = w.Dropdown(options=datasets, description="dataset")
    subj = w.Dropdown(description="subject")
    samp = w.Dropdown(description="sample")
    wrong = w.Checkbox(value=False, description="misclassified only")
    # CAM off at first: each new subject costs one fold of re-training
    cam = w.Checkbox(value=cam_default and model_for_subject is not None, description="CAM (LayerCAM)",
                     disabled=model_for_subject is None)
    out = w.Output()

    def _samples():
        rows = by_sample[(by_sample["dataset"] == ds.value) & (by_sample["subject"] == subj.value)]
        if wrong.value:
            rows = rows[rows["label"] != rows["pred"]]
        return sorted(rows.index)

    def _subjects():
        rows = by_sample[by_sample["dataset"] == ds.value]
        if wrong.value:
            rows = rows[rows["label"] != rows["pred"]]
        return sorted(set(rows["subject"]))

    def _draw(*_):
        out.clear_output(wait=True)
        with out:
            if not samp.value:
                print("no sample matches")
                return
            model = model_for_subject(subj.value) if (cam.value and model_for_subject) else None
            fig = explorer_view(run, data, samp.value, model=model)
            plt.show(fig)

    def _refresh_subjects(*_):
        subj.options = _subjects()
        _refresh_samples()

    def _refresh_samples(*_):
        samp.options = _samples()
        _draw()

    ds.observe(_refresh_subjects, "value")
    wrong.observe(_refresh_subjects, "value")
    subj.observe(_refresh_samples, "value")
    samp.observe(_draw, "value")
    cam.observe(_draw, "value")
    _refresh_subjects()
    ui = w.VBox([w.HBox([ds, subj, samp]), w.HBox([wrong, cam]), out])
    display(ui)
    return ui
