"""MEGC2019 scoring: pool every LOSO fold's predictions, then score once.

* UF1 (unweighted F1) = mean over classes of F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)
* UAR (unweighted average recall) = mean over classes of TP_c / N_c
* accuracy = correct / total

Classes are those with at least one ground-truth sample in the scored subset (MEGC2019 reference
code skips a class it cannot score). A class absent from the ground truth therefore does not enter
the means; predictions into it still cost the true class its recall and F1.
Per-dataset scores pool that dataset's subjects. Over seeds we report mean and sample std (ddof=1).
How far a score could move with other subjects (bootstrap intervals, paired comparisons): :mod:`am3f.results.stats`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from am3f.data.dataset import CLASS_NAMES, DATASET_TITLES


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def scores_from_confusions(cm: np.ndarray) -> dict[str, np.ndarray]:
    """UF1, UAR, accuracy and macro precision of a stack of confusion matrices (..., C, C), vectorised
    over the leading axes (the bootstrap scores thousands at once). NaN where nothing can be scored."""
    cm = np.asarray(cm)
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(float)
    support = cm.sum(axis=-1).astype(float)
    predicted = cm.sum(axis=-2).astype(float)
    present = support > 0
    n_present = present.sum(axis=-1)
    f1 = 2 * tp / np.maximum(support + predicted, 1)
    recall = tp / np.maximum(support, 1)
    precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
    n = support.sum(axis=-1)

    def macro(per_class: np.ndarray) -> np.ndarray:
        # mean over the classes present in the ground truth only (see the module docstring)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n_present > 0, np.where(present, per_class, 0.0).sum(axis=-1) / n_present, np.nan)

    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(n > 0, tp.sum(axis=-1) / n, np.nan)
    return {"uf1": macro(f1), "uar": macro(recall), "accuracy": accuracy,
            # macro precision: what some peers report under the name "UAR"; kept for the audit only
            "macro_precision": macro(precision), "n": n.astype(np.int64)}


def scores_from_confusion(cm: np.ndarray) -> dict[str, float]:
    """The scores of one confusion matrix (rows = true class) as plain numbers."""
    scores = scores_from_confusions(cm)
    return {k: int(v) if k == "n" else float(v) for k, v in scores.items()}


def megc_scores(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int = len(CLASS_NAMES)) -> dict[str, float]:
    """UF1, UAR, accuracy (and macro precision, n) of pooled predictions."""
    return scores_from_confusion(confusion_matrix(y_true, y_pred, n_classes))


SUBSET_ORDER: tuple[str, ...] = ("composite", "casme2", "samm", "smic", "synthetic", "hold-out")


def subset_key(subset: str) -> tuple[int, str]:
    """Sort key of subsets: composite first, then the datasets in their usual order."""
    return (SUBSET_ORDER.index(subset) if subset in SUBSET_ORDER else len(SUBSET_ORDER), subset)


def seed_mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single seed) of one score over seeds:
    the one aggregation over seeds used by every table, ``am3f score`` and the benchmarks."""
    vals = np.asarray(values, dtype=float)
    return float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0


def score_table(predictions: pd.DataFrame, n_classes: int = len(CLASS_NAMES),
                holdout: Sequence[str] = ()) -> pd.DataFrame:
    """One row per (seed, subset): subset 'composite' pools everything, others pool one dataset, and
    'hold-out' (given its ``holdout`` subjects, :func:`am3f.results.stats.holdout_subjects`) pools the subjects
    outside the development half."""
    rows = []
    holdout = {str(s) for s in holdout}
    # decided on the whole run: a partial seed that finished one dataset's folds only still scores it
    per_dataset = predictions["dataset"].nunique() > 1
    for seed, by_seed in predictions.groupby("seed", sort=True):
        subsets = [("composite", by_seed)] + [(d, g) for d, g in by_seed.groupby("dataset", sort=True)]
        if not per_dataset:
            subsets = subsets[:1]
        if holdout:
            subsets.append(("hold-out", by_seed[by_seed["subject"].astype(str).isin(holdout)]))
        for subset, g in subsets:
            rows.append({"seed": int(seed), "subset": subset,
                         **megc_scores(g["label"].to_numpy(), g["pred"].to_numpy(), n_classes)})
    return pd.DataFrame(rows)


def summarize(predictions: pd.DataFrame, n_classes: int = len(CLASS_NAMES), holdout: Sequence[str] = ()) -> dict:
    """Per-seed scores plus mean/std over seeds, per subset: the content of ``metrics.json``
    (``holdout``: the hold-out half's subjects, scored as subset 'hold-out')."""
    table = score_table(predictions, n_classes, holdout)
    out: dict = {"seeds": sorted(int(s) for s in table["seed"].unique()), "subsets": {}}
    for subset, g in table.groupby("subset", sort=False):
        title = "Hold-out" if subset == "hold-out" else DATASET_TITLES.get(subset, subset)
        entry = {"title": title, "n": int(g["n"].iloc[0]), "per_seed": {}}
        for metric in ("uf1", "uar", "accuracy", "macro_precision"):
            mean, std = seed_mean_std(g[metric])
            entry[metric] = {"mean": mean, "std": std}
        for _, r in g.iterrows():
            entry["per_seed"][str(int(r["seed"]))] = {m: float(r[m]) for m in ("uf1", "uar", "accuracy")}
        out["subsets"][subset] = entry
    return out


def format_interval(interval: Sequence[float] | None, digits: int = 3) -> str:
    """'[0.643, 0.773]': how every 95 % subject-bootstrap interval is printed ('' when there is none)."""
    if interval is None or any(v is None or np.isnan(v) for v in interval):
        return ""
    lo, hi = interval
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def format_summary(summary: dict) -> str:
    """Plain-text table of a :func:`summarize` result (what ``am3f score`` prints); a metric with a
    ``ci95`` entry (added by :func:`am3f.results.stats.add_intervals`) is followed by its interval."""
    seeds = summary["seeds"]
    multi = len(seeds) > 1
    entries = list(summary["subsets"].values())
    with_ci = any("ci95" in e["uf1"] for e in entries)
    notes = ["mean ± std over seeds"] if multi else []
    notes += ["[lo, hi] = 95 % subject-bootstrap interval"] if with_ci else []
    lines = [f"seeds: {' '.join(map(str, seeds))}" + (f"   ({'; '.join(notes)})" if notes else "")]
    rows = []
    for e in entries:
        cells = []
        for m in ("uf1", "uar", "accuracy"):
            cell = f"{e[m]['mean']:.4f} ± {e[m]['std']:.4f}" if multi else f"{e[m]['mean']:.4f}"
            cells.append(f"{cell} {format_interval(e[m].get('ci95'))}".rstrip())
        rows.append((e["title"], e["n"], cells))
    width = max(15, *(len(c) for _, _, cells in rows for c in cells))
    head = f"{'subset':<12}{'n':>5}  " + "  ".join(f"{t:>{width}}" for t in ("UF1", "UAR", "accuracy"))
    lines += [head, "-" * len(head)]
    lines += [f"{title:<12}{n:>5}  " + "  ".join(f"{c:>{width}}" for c in cells) for title, n, cells in rows]
    if "hold-out" in summary["subsets"]:
        lines.append(f"Hold-out = the {summary['subsets']['hold-out'].get('n_subjects', '')} subjects outside the "
                     "development half: they never informed a design or schedule decision (the clean score)")
    lines += [f"warning: {e['title']}: {e['warning']}" for e in entries if e.get("warning")]
    if multi:
        lines.append("")
        lines.append("per seed (composite UF1 / UAR):")
        comp = summary["subsets"]["composite"]["per_seed"]
        lines += [f"  seed {s}: {v['uf1']:.4f} / {v['uar']:.4f}" for s, v in comp.items()]
    return "\n".join(lines)
