"""The development protocol: how designs are chosen without ever looking at a test subject of the
reported runs.

:func:`dev_subjects` splits the subjects in two halves; candidate designs are compared by
:func:`dev_cv`, subject-grouped cross-validation inside the development half only; the other half
(:func:`holdout_subjects`) is never used for a decision. See docs/design-choices.md.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from am3f.data.dataset import FlowDataset
from am3f.models.am3f_flownet import ModelConfig
from am3f.protocol.engine import QUIET, Execution
from am3f.training.recipe import TrainConfig


def dev_subjects(data: FlowDataset) -> list[str]:
    """The development half: within each source dataset, every second subject in sorted order
    (the 1st, 3rd, 5th, ...). Tuning uses only these; the rest is the untouched half."""
    from am3f.protocol.folds import development_half

    return development_half(data.datasets, data.subjects)


def holdout_subjects(data: FlowDataset) -> list[str]:
    dev = set(dev_subjects(data))
    return [s for s in data.subject_ids if s not in dev]


def dev_folds(data: FlowDataset, n_splits: int = 5, subjects: list[str] | None = None) -> FlowDataset:
    """The development half (or the given ``subjects``: :mod:`am3f.protocol.tuning` uses either half) with each
    sample's ``subjects`` entry replaced by its CV fold (``cv0`` ..), subjects dealt to the folds in
    turn within each source dataset: LOSO over these pseudo-subjects is subject-grouped ``n_splits``-fold
    CV, run by the same engine as every LOSO run. Only those subjects' samples are in it."""
    dev = data.subset(np.isin(data.subjects, dev_subjects(data) if subjects is None else subjects))
    fold_of = {}
    for ds in sorted(set(dev.datasets.tolist())):
        for i, s in enumerate(sorted(set(dev.subjects[dev.datasets == ds].tolist()))):
            fold_of[s] = f"cv{i % n_splits}"
    return replace(dev, subjects=np.array([fold_of[s] for s in dev.subjects]), name=f"{data.name}-dev-cv")


def dev_cv(data: FlowDataset, model_cfg: ModelConfig, train_cfg: TrainConfig, *, seeds=(0,), n_splits: int = 5,
           subjects: list[str] | None = None, out: str | None = None, execution: Execution = QUIET) -> dict:
    """Subject-grouped ``n_splits``-fold CV inside the development half only (or inside ``subjects``):
    pooled UF1/UAR per seed of ``seeds`` (only those, whatever else ``out`` holds), their means, and the
    predictions (for paired comparisons, :func:`am3f.results.stats.compare_predictions`). ``out``: keep the CV's
    run directory there (resumable); None: a temporary one. ``execution``: where and how it trains."""
    import tempfile

    from am3f.protocol.engine import run_loso
    from am3f.protocol.fold_runner import TrainRunner
    from am3f.protocol.metrics import megc_scores
    from am3f.protocol.run_folder import merge_run

    folds = dev_folds(data, n_splits, subjects)
    with tempfile.TemporaryDirectory() as tmp:
        run = out or tmp
        config = {"kind": "cv", "model_config": model_cfg.to_dict(), "train_config": train_cfg.to_dict(),
                  "n_splits": n_splits}
        runner = TrainRunner(model_cfg, train_cfg, execution.device, record_epochs=False, threads=execution.threads)
        run_loso(folds, runner, run, seeds=seeds, config=config, execution=execution.but(show_progress=False))
        preds = merge_run(run)
    preds = preds[preds["seed"].isin([int(s) for s in seeds])]  # a kept folder may hold other seeds too
    out = {"per_seed": {int(s): megc_scores(g["label"], g["pred"]) for s, g in preds.groupby("seed")},
           "predictions": preds}
    out["uf1"] = float(np.mean([v["uf1"] for v in out["per_seed"].values()]))
    out["uar"] = float(np.mean([v["uar"] for v in out["per_seed"].values()]))
    return out
