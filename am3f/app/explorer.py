"""Browsing a run sample by sample: mistakes, one sample's predictions, a static view with the
class activation map (LayerCAM, am3f.results.gradcam) of each branch, and the ipywidgets explorer of notebook 08."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from am3f.errors import AM3FError
from am3f.protocol.run_folder import RunResult
from am3f.results.plots import plot_scores
from am3f.results.writers import display_table, synthetic_caption


def misclassified(predictions: pd.DataFrame, seed: int | None = None) -> pd.DataFrame:
    """Rows whose prediction is wrong (optionally of one seed), most confident mistakes first."""
    p = predictions if seed is None else predictions[predictions.seed == seed]
    wrong = p[p["label"] != p["pred"]].copy()
    score_cols = [c for c in p.columns if c.startswith("score_")]
    if score_cols:
        wrong["confidence"] = wrong[score_cols].max(axis=1)
        wrong = wrong.sort_values("confidence", ascending=False)
    return wrong


def sample_predictions(predictions: pd.DataFrame, sample_id: str, class_names=None) -> pd.DataFrame:
    """Every seed's prediction and class scores for one sample (the explorer's table); with
    ``class_names``, true and predicted class by name instead of label number."""
    rows = predictions[predictions["sample_id"] == sample_id]
    if rows.empty:
        raise AM3FError(f"sample {sample_id!r} is not in this run's predictions")
    rows = rows.reset_index(drop=True)
    if class_names is not None:
        rows = rows.assign(label=[class_names[int(v)] for v in rows["label"]],
                           pred=[class_names[int(v)] for v in rows["pred"]])
    return rows


def sample_table(run: RunResult, data, sample_id: str):
    """What the explorer shows under its picture: :func:`sample_predictions` with class names, seed first,
    as a notebook displays tables (no index column)."""
    rows = sample_predictions(run.predictions, sample_id, data.class_names)
    scores = [c for c in rows.columns if c.startswith("score_")]
    return display_table(rows[["seed", "fold", "label", "pred", *scores]].rename(columns={"label": "true"}))


def partial_note(run: RunResult) -> str:
    """A partial run in words ('' when complete): which subjects the explorer can offer, and why."""
    if run.complete:
        return ""
    n = run.predictions["subject"].nunique()
    return (f"Partial run: predictions exist for {n} subject(s) only (the folds trained so far); the dropdowns "
            f"list those. Finish the run (the same command resumes it) to browse every subject.")


CAM_NOTE = ("CAM starts off: drawing a class activation map needs the model of the fold that held the sample "
            "out, re-trained on first use for each subject (seconds to minutes), then cached.")


def explorer_view(run: RunResult, data, sample_id: str, model=None, show_cam: bool = True):
    """Static view of one sample: u, v, strain, its class scores per seed, and (with ``model``, the
    model of the fold that held this sample out) the class activation map of every branch (the default
    method of :mod:`am3f.results.gradcam`). Returns the figure."""
    import matplotlib.pyplot as plt

    idx = int(np.flatnonzero(data.sample_ids == sample_id)[0])
    rows = sample_predictions(run.predictions, sample_id)
    score_cols = [c for c in rows.columns if c.startswith("score_")]
    cams = None
    if model is not None and show_cam:
        from am3f.results.gradcam import all_branch_maps

        cams = {k: v[0] for k, v in all_branch_maps(model, data.x[idx:idx + 1], int(rows["pred"].iloc[0])).items()}
    # the sample and its scores on one row; the CAMs, when shown, on a second row of the same panel size
    # (seven panels on one row left each about 130 px wide in a notebook: too small to read)
    rows_n = 2 if cams else 1
    fig, grid = plt.subplots(rows_n, 4, figsize=(9.2, 2.6 * rows_n), squeeze=False)
    axes = grid[0]
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
        shown = None
        for j, (name, cam) in enumerate(list(cams.items())[:3]):
            ax = grid[1][j]
            ch = ("u", "v", "strain").index(name) if name in ("u", "v", "strain") else 0
            ax.imshow(data.x[idx, ch], cmap="gray")
            shown = ax.imshow(cam, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            ax.set_title(f"LayerCAM, {name} branch", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in grid[1][len(cams):]:
            ax.axis("off")
        if shown is not None:
            fig.colorbar(shown, ax=grid[1][len(cams) - 1], fraction=0.046, pad=0.04, label="relevance")
    preds = ", ".join(f"seed {int(s)}: {data.class_names[int(p)]}" for s, p in zip(rows["seed"], rows["pred"]))
    title = (f"{sample_id} ({data.datasets[idx]}, subject {data.subjects[idx]}, fold {int(rows['fold'].iloc[0])}) — "
             f"true {data.class_names[label]}; predicted {preds}")
    fig.suptitle(synthetic_caption(title, run.synthetic), fontsize=9)
    fig.tight_layout()
    return fig


def default_sample(predictions: pd.DataFrame) -> str:
    """The sample the explorer opens on: the most confident mistake (:func:`misclassified`, any seed),
    else the first sample of the run."""
    if predictions.empty:
        raise AM3FError("the run has no predictions yet")
    wrong = misclassified(predictions)
    return str((wrong if len(wrong) else predictions)["sample_id"].iloc[0])


def static_view_png(run: RunResult, data, sample_id: str, model=None, dpi: int = 100) -> bytes:
    """PNG of :func:`explorer_view` (the figure is closed, not shown)."""
    import io

    import matplotlib.pyplot as plt

    fig = explorer_view(run, data, sample_id, model=model)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    finally:
        plt.close(fig)
    return buf.getvalue()


@functools.lru_cache(maxsize=1)
def _explorer_box():
    import ipywidgets as w

    class ExplorerBox(w.VBox):
        """The explorer's widget. Besides the live widget view, its display carries a static picture of
        the sample it opened on (image/png) and a stable text/plain (no memory address, nothing of the
        machine): what GitHub and the rendered site show, where no kernel runs the widget."""

        static_png = None              # () -> PNG bytes of the sample the explorer opened on
        static_text = "am3f explorer"

        def _repr_mimebundle_(self, **kwargs):
            import base64

            bundle = dict(super()._repr_mimebundle_(**kwargs) or {})
            if self.static_png is not None:
                bundle["image/png"] = base64.b64encode(self.static_png()).decode("ascii")
            bundle["text/plain"] = self.static_text
            return bundle

        def __repr__(self):
            return self.static_text

    return ExplorerBox


class PredictedSamples:
    """The samples a run has predictions for (one row each: dataset, subject, label), and which of
    them some seed got wrong; what the explorer's dropdowns offer."""

    def __init__(self, predictions: pd.DataFrame):
        table = predictions.drop_duplicates("sample_id").set_index("sample_id")[["dataset", "subject", "label"]]
        table.index = table.index.astype(str)
        self.table = table
        self.wrong = set(predictions.loc[predictions["label"] != predictions["pred"], "sample_id"].astype(str))

    def rows(self, dataset=None, subject=None, wrong_only: bool = False) -> pd.DataFrame:
        rows = self.table
        if dataset is not None:
            rows = rows[rows["dataset"] == dataset]
        if subject is not None:
            rows = rows[rows["subject"] == subject]
        return rows[rows.index.isin(self.wrong)] if wrong_only else rows

    def summary(self, run: RunResult, data, start: str) -> str:
        """The explorer's stable text/plain: what a static renderer shows beside its picture."""
        first = self.table.loc[start]
        n_subjects = self.table.groupby("dataset")["subject"].nunique().sum()
        note = partial_note(run)
        return (f"am3f explorer of run {run.label!r}: {len(self.table)} predicted samples of {n_subjects} "
                f"subject(s), {len(self.wrong)} misclassified by some seed; showing {start} "
                f"({first['dataset']}, subject {first['subject']}, true {data.class_names[int(first['label'])]})"
                + (f"\n{note}" if note else ""))


def _notes(run: RunResult, model_for_subject) -> str:
    """What the explorer says under its controls: why CAM starts off, and a partial run in words."""
    notes = [CAM_NOTE if model_for_subject is not None else "CAM unavailable: no fold model was given.",
             partial_note(run)]
    return "<br>".join(f"<small>{n}</small>" for n in notes if n)


def _refill(dropdown, options) -> None:
    # ipywidgets 8: new options leave the value as it was or None; keep it where it still fits
    keep = dropdown.value
    dropdown.options = options
    dropdown.value = keep if keep in options else (options[0] if options else None)


def explorer(run: RunResult, data, model_for_subject=None, cam_default: bool = False, sample_id: str | None = None,
             show: bool = True):
    """ipywidgets explorer: dataset -> subject -> sample, 'misclassified only', 'Grad-CAM'.

    It opens on ``sample_id`` (default: :func:`default_sample`, the most confident mistake) and lists
    only datasets, subjects and samples that have predictions in the run; 'misclassified only' keeps
    the samples some seed got wrong. ``model_for_subject(subject) -> model`` supplies the fold model for
    Grad-CAM (e.g. a cached :func:`am3f.protocol.launch.fold_model`); without it no CAM is drawn. ``show``:
    display it (else only return it). Returns the widget (a VBox).
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    start = sample_id or default_sample(run.predictions)
    samples = PredictedSamples(run.predictions)
    if start not in samples.table.index:
        raise AM3FError(f"sample {start!r} is not in this run's predictions")
    _rows = samples.rows
    first = samples.table.loc[start]
    ds = w.Dropdown(options=sorted(set(samples.table["dataset"])), value=first["dataset"], description="dataset")
    subj = w.Dropdown(options=sorted(set(_rows(first["dataset"])["subject"])), value=first["subject"],
                      description="subject")
    samp = w.Dropdown(options=sorted(_rows(first["dataset"], first["subject"]).index), value=start,
                      description="sample")
    wrong = w.Checkbox(value=False, description="misclassified only")
    cam = w.Checkbox(value=cam_default and model_for_subject is not None, description="CAM (LayerCAM)",
                     disabled=model_for_subject is None)
    out = w.Output()
    busy = [False]   # while the dropdowns are refilled, their value changes draw nothing

    def _model(subject):
        return model_for_subject(subject) if (cam.value and model_for_subject) else None

    def _draw(*_):
        if busy[0]:
            return
        out.clear_output(wait=True)
        with out:
            if not samp.value:
                print("no sample matches")
                return
            fig = explorer_view(run, data, samp.value, model=_model(subj.value))
            display(fig)
            plt.close(fig)
            display(sample_table(run, data, samp.value))  # the table follows the chosen sample

    def _refresh(*_):
        if busy[0]:
            return
        busy[0] = True
        try:
            _refill(subj, sorted(set(_rows(ds.value, wrong_only=wrong.value)["subject"])))
            _refill(samp, sorted(_rows(ds.value, subj.value, wrong.value).index))
        finally:
            busy[0] = False
        _draw()

    for widget in (ds, subj, wrong):
        widget.observe(_refresh, "value")
    samp.observe(_draw, "value")
    cam.observe(_draw, "value")
    ui = _explorer_box()([w.HBox([ds, subj, samp]), w.HBox([wrong, cam]), w.HTML(_notes(run, model_for_subject)), out])
    start_model = _model(first["subject"])
    ui.static_png = lambda: static_view_png(run, data, start, model=start_model)
    ui.static_text = samples.summary(run, data, start)
    _draw()
    if show:
        display(ui)
    return ui
