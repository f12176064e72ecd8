"""MEGC2019 scoring: pool every LOSO fold's predictions, then score once.

* UF1 (unweighted F1) = mean over classes of F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)
* UAR (unweighted average recall) = mean over classes of TP_c / N_c
* accuracy = correct / total

Classes are those with at least one ground-truth sample in the scored subset (MEGC2019 reference
code skips a class it cannot score). A class absent from the ground truth therefore does not enter
the means; predictions into it still cost the true class its recall and F1.
Per-dataset scores pool that dataset's subjects. Over seeds we report mean and sample std (ddof=1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .data import CLASS_NAMES, DATASET_TITLES


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def scores_from_confusion(cm: np.ndarray) -> dict[str, float]:
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    present = support > 0
    f1 = 2 * tp / np.maximum(support + predicted, 1)
    recall = tp / np.maximum(support, 1)
    precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
    n = cm.sum()
    return {
        "uf1": float(f1[present].mean()) if present.any() else float("nan"),
        "uar": float(recall[present].mean()) if present.any() else float("nan"),
        "accuracy": float(tp.sum() / n) if n else float("nan"),
        # macro precision: what some peers report under the name "UAR"; kept for the audit only
        "macro_precision": float(precision[present].mean()) if present.any() else float("nan"),
        "n": int(n),
    }


def megc_scores(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int = len(CLASS_NAMES)) -> dict[str, float]:
    """UF1, UAR, accuracy (and macro precision, n) of pooled predictions."""
    return scores_from_confusion(confusion_matrix(y_true, y_pred, n_classes))


SUBSET_ORDER: tuple[str, ...] = ("composite", "casme2", "samm", "smic", "synthetic")


def subset_key(subset: str) -> tuple[int, str]:
    """Sort key of subsets: composite first, then the datasets in their usual order."""
    return (SUBSET_ORDER.index(subset) if subset in SUBSET_ORDER else len(SUBSET_ORDER), subset)


def seed_mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single seed) of one score over seeds:
    the one aggregation over seeds used by every table, ``am3f score`` and the benchmarks."""
    vals = np.asarray(values, dtype=float)
    return float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0


def score_table(predictions: pd.DataFrame, n_classes: int = len(CLASS_NAMES)) -> pd.DataFrame:
    """One row per (seed, subset): subset 'composite' pools everything, others pool one dataset."""
    rows = []
    for seed, by_seed in predictions.groupby("seed", sort=True):
        subsets = [("composite", by_seed)] + [(d, g) for d, g in by_seed.groupby("dataset", sort=True)]
        if by_seed["dataset"].nunique() == 1:
            subsets = subsets[:1]
        for subset, g in subsets:
            rows.append({"seed": int(seed), "subset": subset,
                         **megc_scores(g["label"].to_numpy(), g["pred"].to_numpy(), n_classes)})
    return pd.DataFrame(rows)


def summarize(predictions: pd.DataFrame, n_classes: int = len(CLASS_NAMES)) -> dict:
    """Per-seed scores plus mean/std over seeds, per subset: the content of ``metrics.json``."""
    table = score_table(predictions, n_classes)
    out: dict = {"seeds": sorted(int(s) for s in table["seed"].unique()), "subsets": {}}
    for subset, g in table.groupby("subset", sort=False):
        entry = {"title": DATASET_TITLES.get(subset, subset), "n": int(g["n"].iloc[0]), "per_seed": {}}
        for metric in ("uf1", "uar", "accuracy", "macro_precision"):
            mean, std = seed_mean_std(g[metric])
            entry[metric] = {"mean": mean, "std": std}
        for _, r in g.iterrows():
            entry["per_seed"][str(int(r["seed"]))] = {m: float(r[m]) for m in ("uf1", "uar", "accuracy")}
        out["subsets"][subset] = entry
    return out


def format_summary(summary: dict) -> str:
    """Plain-text table of a :func:`summarize` result (what ``am3f score`` prints)."""
    seeds = summary["seeds"]
    multi = len(seeds) > 1
    lines = [f"seeds: {' '.join(map(str, seeds))}" + ("   (mean ± std over seeds)" if multi else "")]
    head = f"{'subset':<12}{'n':>5}  {'UF1':>15}  {'UAR':>15}  {'accuracy':>15}"
    lines += [head, "-" * len(head)]
    for e in summary["subsets"].values():
        cells = []
        for m in ("uf1", "uar", "accuracy"):
            cells.append(f"{e[m]['mean']:.4f} ± {e[m]['std']:.4f}" if multi else f"{e[m]['mean']:.4f}")
        lines.append(f"{e['title']:<12}{e['n']:>5}  {cells[0]:>15}  {cells[1]:>15}  {cells[2]:>15}")
    if multi:
        lines.append("")
        lines.append("per seed (composite UF1 / UAR):")
        comp = summary["subsets"]["composite"]["per_seed"]
        lines += [f"  seed {s}: {v['uf1']:.4f} / {v['uar']:.4f}" for s, v in comp.items()]
    return "\n".join(lines)
