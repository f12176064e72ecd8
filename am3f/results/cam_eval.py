"""Measuring class activation maps: against known motion (synthetic set) and by deletion (any data).

Known motion
    The synthetic set records where each face really moved (:func:`am3f.flow.synth.true_motion_mask`).
    The **mass ratio** of a map is the share of its mass inside those regions divided by their share
    of the image: 1.0 = no better than a uniform map, 1 / area = every bit of mass on the motion.
    It is computed per sample (target = the true class), on held-out subjects only (each through
    the model of the fold that left it out), and summarised with a 95% percentile-bootstrap interval
    over samples. A map that is all zeros (a branch the model gives no weight) has no ratio: such
    samples are counted apart, not as zeros.

Faithfulness (no ground truth needed)
    **Deletion**: the most-attributed pixels of a branch's map are set to "no motion" first, in
    steps of 1/``steps`` of the image, and the probability of the predicted class is read after each
    step; the area under that curve (mean probability) is lower the better the map points at what the
    model uses. **Insertion** starts from a no-motion map and puts pixels back, most attributed first
    (higher = better). Baselines: the same with a random order, "uniform" (every pixel faded
    towards no motion at once) and a model-free "motion" order (largest deviation from no motion
    first: what any map that just finds the motion would do). "No motion" in the per-image min-max
    stretched images: for u and v the image's median (the value of the still face: the stretch
    maps zero flow to -min / (max - min), which is unknown and, with head jitter, often outside
    [0, 1], while most of the face moves only with the head); for strain 0 (strain is >= 0 and the
    stretch sends the least strain, ~0, to 0). Only the branch's own channel is changed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from am3f.data.dataset import CHANNELS, CLASS_NAMES, FlowDataset
from am3f.protocol.folds import held_out_rows
from am3f.results.gradcam import (
    DEFAULT_FLIP,
    DEFAULT_LAYERS,
    DEFAULT_METHOD,
    branch_names,
    gradcam_maps,
    predicted_classes,
)

# (method, layers, flip): what docs/design-choices.md compares, every stage of every branch
CANDIDATES: tuple[tuple[str, str, bool], ...] = tuple(
    [(m, part, False) for m in ("gradcam", "gradcam++", "hirescam", "layercam")
     for part in ("stage1", "stage2", "stage3", "all", "first*last", "stage1*stage2*stage3")]
    + [("hirescam", "input", False), ("layercam", "input", False)]
    + [("attention", part, False) for part in ("stage1", "stage2", "stage3", "all")]
    + [("hirescam", "first*last", True), ("layercam", "stage1", True), ("layercam", "stage1*stage2*stage3", True),
       (DEFAULT_METHOD, DEFAULT_LAYERS, DEFAULT_FLIP)])


# ----------------------------------------------------------------------------- small measures
def cam_mass_in_mask(cam: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's total mass that falls inside ``mask`` (1 = all of it on the mask)."""
    cam = np.clip(np.asarray(cam, dtype=np.float64), 0, None)
    total = cam.sum()
    return float((cam * mask).sum() / total) if total > 0 else float("nan")


def mass_ratio(cam: np.ndarray, mask: np.ndarray) -> float:
    """Mass share inside ``mask`` over the mask's share of the image (1.0 = chance; NaN when the map
    is all zeros or the mask empty)."""
    area = float(np.mean(mask))
    return cam_mass_in_mask(cam, mask) / area if area > 0 else float("nan")


def rank_auc(cam: np.ndarray, mask: np.ndarray) -> float:
    """How well the map's values rank the mask's pixels above the others (ROC AUC: 0.5 = chance, 1 =
    every mask pixel above every other). Unlike the mass ratio it does not change when a map is
    sharpened (raised to a power), so it tells better localisation from mere contrast."""
    from scipy.stats import rankdata

    c, m = np.asarray(cam, dtype=np.float64).ravel(), np.asarray(mask, dtype=bool).ravel()
    n1, n0 = int(m.sum()), int((~m).sum())
    if n1 == 0 or n0 == 0 or not c.max() > 0:
        return float("nan")
    return float((rankdata(c)[m].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def mean_interval(values: Sequence[float], level: float = 0.95, n_boot: int = 2000, seed: int = 0
                  ) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the finite values: percentile bootstrap over the values (samples)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan"), 0
    boots = v[np.random.default_rng(seed).integers(0, len(v), (n_boot, len(v)))].mean(1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return float(v.mean()), float(lo), float(hi), len(v)


def summarise(rows, value: str = "ratio", by: Sequence[str] = ("method", "layers", "flip", "branch")):
    """Mean, 95% bootstrap interval and sample count of ``value`` per group of a rows DataFrame."""
    import pandas as pd

    out = []
    for key, grp in rows.groupby(list(by), sort=False):
        mean, lo, hi, n = mean_interval(grp[value].to_numpy())
        out.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), "mean": mean, "low": lo,
                    "high": hi, "n": n, "no map": int(grp[value].isna().sum())})
    return pd.DataFrame(out)


def format_interval(mean: float, lo: float, hi: float, digits: int = 2) -> str:
    return "-" if not np.isfinite(mean) else f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


# ----------------------------------------------------------------------------- fold models
def fold_models(data: FlowDataset, subjects: Sequence[str], seeds: Sequence[int] = (0,), variant: str = "full",
                epochs: int = 0, runs_dir: str | os.PathLike | None = None, device: str = "cpu") -> dict:
    """{(seed, subject): the model of the LOSO fold that held ``subject`` out}, trained with the
    declared schedule (``epochs`` 0) of ``variant``.

    The models are those :func:`am3f.protocol.launch.fold_model` re-fits and caches for the run directory
    notebooks would use for the same configuration (``runs_dir/<variant>-<hash>``; only its
    config.json is written here), so notebooks and benchmarks share them."""
    from am3f.protocol.launch import config_hash, default_out_dir, fold_model, run_config
    from am3f.utils import atomic_write

    config = run_config(data, "am3f", variant, epochs=epochs or None)
    run_dir = Path(runs_dir or default_out_dir() / "runs") / f"{config['variant']}-{config_hash(config)}"
    if not (run_dir / "config.json").is_file():
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(run_dir / "config.json", lambda p: Path(p).write_text(json.dumps(config, indent=2)))
    return {(s, sub): fold_model(run_dir, data, sub, seed=s, device=device) for s in seeds for sub in subjects}


def largest_subjects(data: FlowDataset, n: int) -> list[str]:
    """The ``n`` subjects with the most samples (most held-out samples per re-fitted fold)."""
    counts = {s: int((data.subjects == s).sum()) for s in data.subject_ids}
    return sorted(counts, key=lambda s: (-counts[s], s))[:n]


def branch_weights(model: nn.Module, x: np.ndarray | torch.Tensor) -> np.ndarray:
    """(N, branches) MOFRW flow weight each branch gets per sample (they average 1; 1 everywhere for
    a model without flow weights). A branch near 0 barely counts for the prediction: its map is then
    what the branch would say, not what the model uses."""
    n_branches = len(branch_names(model))
    mofrw = getattr(model, "mofrw", None)
    if mofrw is None or mofrw.flow_mlp is None:
        return np.ones((len(x), n_branches))
    model.eval()
    with torch.no_grad():
        model(torch.as_tensor(np.asarray(x, dtype=np.float32)).to(next(model.parameters()).device))
    return mofrw.last_flow_weights.cpu().numpy().astype(np.float64)


# ----------------------------------------------------------------------------- known motion
def motion_masks(data: FlowDataset, idx: Sequence[int] | None = None, threshold: float = 0.3) -> np.ndarray:
    """(N, H, W) true moving regions of synthetic samples ``idx`` (all when None)."""
    from am3f.flow.synth import ground_truth_root, true_motion_mask

    root = ground_truth_root(data)
    if root is None:
        raise ValueError("the mass ratio needs the synthetic set's ground truth (gt/); this dataset has none")
    idx = range(len(data)) if idx is None else idx
    return np.stack([true_motion_mask(root, data.sample_ids[i], data.image_size, threshold) for i in idx])


def mass_ratio_rows(models: dict, data: FlowDataset,
                    candidates: Sequence[tuple[str, str, bool]] = ((DEFAULT_METHOD, DEFAULT_LAYERS, DEFAULT_FLIP),),
                    progress_bar: bool = False):
    """One row per (model, held-out sample, branch, candidate): its mass ratio (target = true class).

    ``models``: {(seed, subject): fold model} (:func:`fold_models`) or {subject: model}. Columns: seed,
    subject, sample_id, label, branch, method, layers, flip, ratio (NaN: the map is all zeros), auc
    (:func:`rank_auc`), area (of the moving regions), weight (the branch's MOFRW flow weight)."""
    import pandas as pd

    from am3f.utils import progress

    rows = []
    for key, model in progress(list(models.items()), desc="fold models", disable=not progress_bar):
        seed, subject = key if isinstance(key, tuple) else (0, key)
        idx = held_out_rows(data, subject)
        masks = motion_masks(data, idx)
        x = torch.from_numpy(data.x[idx])
        weights = branch_weights(model, x)
        for method, layers, flip in candidates:
            for k, b in enumerate(branch_names(model)):
                cams = gradcam_maps(model, x, data.labels[idx], b, method=method, layers=layers, flip=flip)
                for j, i in enumerate(idx):
                    rows.append({"seed": seed, "subject": subject, "sample_id": str(data.sample_ids[i]),
                                 "label": data.class_names[data.labels[i]], "branch": b, "method": method,
                                 "layers": layers, "flip": flip, "ratio": mass_ratio(cams[j], masks[j]),
                                 "auc": rank_auc(cams[j], masks[j]), "area": float(masks[j].mean()),
                                 "weight": float(weights[j, k])})
    return pd.DataFrame(rows)


def mass_ratio_table(rows, min_weight: float = 0.0):
    """Display table of :func:`mass_ratio_rows`: one row per branch, columns all / each class, cells
    'mean [95% interval] (n)'. ``min_weight``: keep samples where the branch's flow weight is at
    least this (0 = every sample with a map)."""
    import pandas as pd

    rows = rows[rows["weight"] >= min_weight] if min_weight > 0 else rows
    table = []
    for b, g in rows.groupby("branch", sort=False):
        rec = {"branch": b}
        classes = [c for c in CLASS_NAMES if c in set(g["label"])]
        for name, part in [("all", g)] + [(c, g[g["label"] == c]) for c in classes]:
            mean, lo, hi, n = mean_interval(part["ratio"].to_numpy())
            rec[name] = f"{format_interval(mean, lo, hi)} ({n})"
        rec["best possible"] = f"{np.mean(1 / g['area']):.2f}"
        table.append(rec)
    return pd.DataFrame(table)


def cam_mass_report(model: nn.Module, data: FlowDataset, max_samples: int | None = 60, seed: int = 0, **cam):
    """Per branch, one model on synthetic data: the mass ratio of its maps on the true moving regions
    (mean and 95% bootstrap interval over samples), the mean share of mass inside them and their
    mean area (what a uniform map would put there). Raises ValueError without ground truth."""
    import pandas as pd

    idx = np.arange(len(data))
    if max_samples is not None and len(idx) > max_samples:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_samples, replace=False))
    masks = motion_masks(data, idx)
    rows = []
    for name in branch_names(model):
        cams = gradcam_maps(model, data.x[idx], data.labels[idx], name, **cam)
        ratios = [mass_ratio(c, m) for c, m in zip(cams, masks)]
        mean, lo, hi, n = mean_interval(ratios)
        rows.append({"branch": name, "mass ratio (1 = chance)": round(mean, 2),
                     "95% interval": format_interval(mean, lo, hi),
                     "mass in moving regions": float(np.nanmean([cam_mass_in_mask(c, m) for c, m in zip(cams, masks)])),
                     "area of moving regions": float(masks.mean()), "samples": n, "no map": len(idx) - n})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- deletion / insertion
def no_motion_values(x: np.ndarray) -> np.ndarray:
    """(N, C) "no motion" value of every channel in stretched units: median for u, v; 0 for strain."""
    x = np.asarray(x, dtype=np.float32)
    base = np.median(x.reshape(len(x), x.shape[1], -1), axis=2)
    if x.shape[1] == len(CHANNELS):
        base[:, CHANNELS.index("strain")] = 0.0
    return base


def _channels(model: nn.Module, branch: str) -> list[int]:
    return [CHANNELS.index(branch)] if branch in CHANNELS else list(range(len(CHANNELS)))


def perturbation_curves(model: nn.Module, x: np.ndarray, cams: np.ndarray, branch: str, classes: Sequence[int],
                        steps: int = 20, n_random: int = 4, seed: int = 0, flip: bool = DEFAULT_FLIP
                        ) -> dict[str, np.ndarray]:
    """Class probability along deletion and insertion, for each sample: {name: (N, steps + 1)}.

    Names: ``deletion`` / ``insertion`` (the map's order, most attributed first), ``deletion random``
    / ``insertion random`` (random orders, averaged over ``n_random``), ``deletion uniform`` /
    ``insertion uniform`` (all pixels faded at once), ``deletion motion`` / ``insertion motion``
    (a model-free order: the pixels that differ most from no motion first). Only the branch's channel
    is changed (all channels for a model whose streams see every channel); ties are broken at random."""
    from am3f.training.fit import predict

    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float32)
    chans = _channels(model, branch)
    base = no_motion_values(x)
    n, hw = len(x), x.shape[2] * x.shape[3]
    counts = np.rint(np.linspace(0, 1, steps + 1) * hw).astype(int)
    ranks = np.arange(hw)
    out = {f"{mode}{kind}": np.zeros((n, steps + 1)) for kind in ("", " random", " uniform", " motion")
           for mode in ("deletion", "insertion")}
    device = next(model.parameters()).device
    for i in range(n):
        still = np.broadcast_to(base[i][:, None, None], x.shape[1:])
        motion = np.abs(x[i, chans] - still[chans]).sum(0).ravel()
        orders = [np.lexsort((rng.random(hw), -np.asarray(cams[i], np.float64).ravel())),
                  np.lexsort((rng.random(hw), -motion))]
        orders += [rng.permutation(hw) for _ in range(n_random)]
        batch = []
        for order in orders:
            pos = np.empty(hw, int)
            pos[order] = ranks  # rank of every pixel in this order
            for k in counts:
                hit = (pos < k).reshape(x.shape[2:])
                deleted, inserted = x[i].copy(), x[i].copy()
                for c in chans:
                    deleted[c] = np.where(hit, still[c], x[i, c])
                    inserted[c] = np.where(hit, x[i, c], still[c])
                batch += [deleted, inserted]
        for t in np.linspace(0, 1, steps + 1):
            faded, grown = x[i].copy(), x[i].copy()
            for c in chans:
                faded[c] = x[i, c] + t * (still[c] - x[i, c])
                grown[c] = still[c] + t * (x[i, c] - still[c])
            batch += [faded, grown]
        p = predict(model, np.stack(batch), device, tta_flip=flip)[:, int(classes[i])]
        per_order = p[:2 * len(orders) * (steps + 1)].reshape(len(orders), steps + 1, 2)
        out["deletion"][i], out["insertion"][i] = per_order[0, :, 0], per_order[0, :, 1]
        out["deletion motion"][i], out["insertion motion"][i] = per_order[1, :, 0], per_order[1, :, 1]
        out["deletion random"][i] = per_order[2:, :, 0].mean(0)
        out["insertion random"][i] = per_order[2:, :, 1].mean(0)
        rest = p[2 * len(orders) * (steps + 1):].reshape(steps + 1, 2)
        out["deletion uniform"][i], out["insertion uniform"][i] = rest[:, 0], rest[:, 1]
    return out


def curve_area(curves: np.ndarray) -> np.ndarray:
    """Area under each curve over the deleted/inserted share 0..1 (= its mean probability)."""
    c = np.asarray(curves, dtype=np.float64)
    return ((c[:, 1:] + c[:, :-1]) / 2).mean(axis=1)


def faithfulness(models: dict, data: FlowDataset, steps: int = 20, n_random: int = 4, seed: int = 0, **cam):
    """Deletion / insertion of every branch on held-out samples, with the default map (``cam``:
    options of :func:`am3f.results.gradcam.gradcam_maps`). ``models``: {(seed, subject) or subject: model}.

    Returns (rows, curves): rows = one per (sample, branch) with the area of every curve (column per
    curve name); curves = {branch: {curve name: (N, steps + 1)}} pooled over samples. Samples whose
    map is all zeros (branch given no weight) are left out and counted in ``rows`` as NaN areas."""
    import pandas as pd

    rows, curves = [], {}
    flip = cam.get("flip", DEFAULT_FLIP)
    for key, model in models.items():
        subject = key[1] if isinstance(key, tuple) else key
        idx = held_out_rows(data, subject)
        x = data.x[idx]
        classes = predicted_classes(model, x, flip)
        for b in branch_names(model):
            cams = gradcam_maps(model, x, classes, b, **cam)
            alive = cams.reshape(len(cams), -1).max(1) > 0
            got = perturbation_curves(model, x[alive], cams[alive], b, classes[alive], steps, n_random, seed, flip)
            for name, c in got.items():
                curves.setdefault(b, {}).setdefault(name, []).append(c)
            areas = {name: curve_area(c) for name, c in got.items()}
            k = 0
            for j, i in enumerate(idx):
                row = {"subject": subject, "sample_id": str(data.sample_ids[i]), "branch": b,
                       "predicted": data.class_names[classes[j]]}
                row.update({name: (float(a[k]) if alive[j] else float("nan")) for name, a in areas.items()})
                k += int(alive[j])
                rows.append(row)
    curves = {b: {n: np.concatenate(v) for n, v in d.items()} for b, d in curves.items()}
    return pd.DataFrame(rows), curves


def faithfulness_summary(rows):
    """Per branch: mean area of each curve and the paired difference map - random (95% bootstrap
    interval over samples; deletion: below 0 = faithful, insertion: above 0 = faithful)."""
    import pandas as pd

    out = []
    for b, g in rows.groupby("branch", sort=False):
        g = g.dropna(subset=["deletion"])
        rec = {"branch": b, "samples": len(g)}
        for mode in ("deletion", "insertion"):
            for name in (mode, f"{mode} random", f"{mode} uniform", f"{mode} motion"):
                rec[f"{name} AUC"] = float(g[name].mean()) if len(g) else float("nan")
            mean, lo, hi, _ = mean_interval(g[mode] - g[f"{mode} random"])
            rec[f"{mode}: map - random"] = format_interval(mean, lo, hi, 3)
        out.append(rec)
    return pd.DataFrame(out)


def plot_perturbation_curves(curves: dict, title: str = ""):
    """Mean deletion and insertion curves per branch: the map's order against random and uniform."""
    import matplotlib.pyplot as plt

    branches = list(curves)
    fig, axes = plt.subplots(2, len(branches), figsize=(3.0 * len(branches), 5.0), squeeze=False, sharey=True)
    styles = {"": ("map order", "C3", "-"), " random": ("random order", "0.4", "--"),
              " uniform": ("uniform fade", "C0", ":"), " motion": ("largest motion first", "C2", "-.")}
    for col, b in enumerate(branches):
        for row, mode in enumerate(("deletion", "insertion")):
            ax = axes[row, col]
            for suffix, (label, colour, ls) in styles.items():
                c = curves[b][mode + suffix]
                ax.plot(np.linspace(0, 1, c.shape[1]), c.mean(0), color=colour, ls=ls, label=label)
            ax.set_title(f"{b} branch: {mode} (n={len(curves[b][mode])})", fontsize=8)
            ax.set_xlabel("share of pixels " + ("set to no motion" if mode == "deletion" else "put back"), fontsize=7)
            ax.tick_params(labelsize=7)
            if col == 0:
                ax.set_ylabel("probability of predicted class", fontsize=7)
    axes[0, 0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
