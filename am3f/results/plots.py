"""Figures: flow pictures (colour wheel, arrows, the model's 28x28 input), class-score bars and
confusion matrices. Every figure of synthetic data carries the SYNTHETIC label in its title."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from am3f.data.dataset import CLASS_NAMES, DATASET_TITLES
from am3f.errors import AM3FError
from am3f.protocol.metrics import confusion_matrix, megc_scores, subset_key
from am3f.protocol.run_folder import RunResult, as_runs
from am3f.results.writers import save_figure, synthetic_caption


# ----------------------------------------------------------------------------- flow pictures
def flow_to_rgb(u: np.ndarray, v: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-wheel picture of a flow field: hue = direction, saturation = speed, white = no motion.

    uint8 (H, W, 3). ``max_magnitude`` fixes the speed that is fully saturated (default: the
    field's maximum), so several fields can share one scale.
    """
    import matplotlib.colors as mcolors

    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    mag = np.hypot(u, v)
    top = float(max_magnitude) if max_magnitude else float(mag.max())
    # +v is down in image coordinates; flip it so 'up' on screen is 90 degrees on the wheel
    hue = (np.arctan2(-v, u) / (2 * np.pi)) % 1.0
    sat = np.clip(mag / top, 0, 1) if top > 0 else np.zeros_like(mag)
    hsv = np.stack([hue, sat, np.ones_like(mag)], axis=-1)
    return np.clip(np.rint(mcolors.hsv_to_rgb(hsv) * 255), 0, 255).astype(np.uint8)


def colour_wheel(size: int = 64) -> np.ndarray:
    """The legend for :func:`flow_to_rgb`: direction -> colour, centre = no motion."""
    c = (np.arange(size) + 0.5) / size * 2 - 1
    X, Y = np.meshgrid(c, c)
    rgb = flow_to_rgb(X, Y, max_magnitude=1.0)
    rgb[np.hypot(X, Y) > 1] = 255
    return rgb


def plot_flow(u: np.ndarray, v: np.ndarray, strain: np.ndarray | None = None, face: np.ndarray | None = None,
              title: str = "", step: int | None = None, synthetic: bool = False):
    """u, v (diverging colour maps), the colour-wheel picture with its legend, arrows (on the face
    when given) and the optical strain; one row of panels."""
    import matplotlib.pyplot as plt

    panels = 4 + (strain is not None)
    fig, axes = plt.subplots(1, panels, figsize=(2.6 * panels, 2.8))
    lim = float(max(np.abs(u).max(), np.abs(v).max(), 1e-6))
    for ax, f, name in ((axes[0], u, "u (+ right)"), (axes[1], v, "v (+ down)")):
        im = ax.imshow(f, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"{name}, px", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    axes[2].imshow(flow_to_rgb(u, v))
    axes[2].set_title("direction = colour", fontsize=8)
    inset = axes[2].inset_axes([0.72, 0.72, 0.28, 0.28])
    inset.imshow(colour_wheel())
    inset.axis("off")
    h, w = u.shape
    step = step or max(1, min(h, w) // 14)
    yy, xx = np.mgrid[step // 2:h:step, step // 2:w:step]
    axes[3].imshow(face if face is not None else np.hypot(u, v), cmap="gray")
    # arrows exaggerated so sub-pixel motion is visible; the scale is printed in the title
    mag_max = float(np.hypot(u, v).max()) or 1.0
    gain = 1.5 * step / mag_max
    axes[3].quiver(xx, yy, u[yy, xx] * gain, v[yy, xx] * gain, color="red", angles="xy", scale_units="xy",
                   scale=1, width=0.006)
    axes[3].set_title(f"arrows (x{gain:.1f})", fontsize=8)
    if strain is not None:
        im = axes[4].imshow(strain, cmap="magma")
        axes[4].set_title("optical strain", fontsize=8)
        fig.colorbar(im, ax=axes[4], fraction=0.046, pad=0.04)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title or synthetic:
        fig.suptitle(synthetic_caption(title, synthetic), fontsize=9)
    fig.tight_layout()
    return fig


CHANNEL_SCALES = {
    "u": ("RdBu_r", "u, stretched per image:\n0 = most leftward, 1 = most rightward"),
    "v": ("RdBu_r", "v, stretched per image:\n0 = most upward, 1 = most downward"),
    "strain": ("magma", "strain, stretched per image:\n0 = least, 1 = most"),
}


def plot_flow_images(x: np.ndarray, titles: Sequence[str] | None = None,
                     channel_names: Sequence[str] = ("u", "v", "strain"), title: str = "", synthetic: bool = False):
    """Rows = samples, columns = the three [0, 1] channels of each 28x28 flow image (what the model
    sees), one colour bar per column. The values are per-image min-max stretched (as in the MEGC2019
    composite images), so 0 and 1 are the extremes of that image, not fixed speeds."""
    import matplotlib.pyplot as plt

    x = np.asarray(x)
    if x.ndim == 3:
        x = x[None]
    n = len(x)
    fig, axes = plt.subplots(n, 3, figsize=(7.2, 1.9 * n + 1.0), squeeze=False)
    for c, cname in enumerate(channel_names):
        cmap, label = CHANNEL_SCALES.get(cname, ("viridis", cname))
        for i in range(n):
            ax = axes[i, c]
            im = ax.imshow(x[i, c], cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(cname, fontsize=9)
            if c == 0 and titles is not None:
                ax.set_ylabel(titles[i], fontsize=7)
        bar = fig.colorbar(im, ax=axes[:, c].tolist(), orientation="horizontal", fraction=0.08 / max(n, 1) + 0.02,
                           pad=0.04, ticks=[0, 0.5, 1])
        bar.set_label(label, fontsize=6)
        bar.ax.tick_params(labelsize=6)
    if title or synthetic:
        fig.suptitle(synthetic_caption(title, synthetic), fontsize=9)
    return fig


def plot_scores(scores: Sequence[float], class_names: Sequence[str] = CLASS_NAMES, true_label: int | None = None,
                ax=None, title: str = ""):
    """Bar chart of class probabilities (the true class outlined)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 2.2))
    colours = ["tab:green" if i == true_label else "tab:gray" for i in range(len(class_names))]
    ax.bar(list(class_names), list(scores), color=colours)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


# ----------------------------------------------------------------------------- confusion matrices
def confusion_counts(predictions: pd.DataFrame, subset: str = "composite",
                     n_classes: int = len(CLASS_NAMES)) -> tuple[np.ndarray, int]:
    """Confusion counts of one subset, summed over seeds, and the number of seeds summed."""
    p = predictions if subset == "composite" else predictions[predictions["dataset"] == subset]
    if p.empty:
        raise AM3FError(f"no predictions for subset {subset!r}")
    return confusion_matrix(p["label"].to_numpy(), p["pred"].to_numpy(), n_classes), int(p["seed"].nunique())


def plot_confusion(cm: np.ndarray, class_names: Sequence[str] = CLASS_NAMES, normalise: bool = False,
                   ax=None, title: str = "", n_seeds: int = 1):
    """One seaborn heatmap: counts (mean per seed when several seeds) or row-normalised (recall per row)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, 3.2))
    cm = np.asarray(cm, dtype=float)
    if normalise:
        rows = cm.sum(axis=1, keepdims=True)
        values = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
        fmt, vmax, cbar_label = ".2f", 1.0, "fraction of true class"
    else:
        values = cm / max(n_seeds, 1)
        fmt = "g" if n_seeds == 1 else ".1f"
        vmax, cbar_label = None, "samples" if n_seeds == 1 else f"samples (mean of {n_seeds} seeds)"
    sns.heatmap(values, annot=True, fmt=fmt, cmap="Blues", vmin=0, vmax=vmax, square=True, ax=ax,
                xticklabels=class_names, yticklabels=class_names, cbar_kws={"label": cbar_label})
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def confusion_figure(predictions: pd.DataFrame, subset: str = "composite", synthetic: bool = False,
                     class_names: Sequence[str] = CLASS_NAMES, label: str = ""):
    """Counts and row-normalised heatmaps side by side, titled with UF1 / UAR of that subset."""
    import matplotlib.pyplot as plt

    cm, n_seeds = confusion_counts(predictions, subset, len(class_names))
    sc = megc_scores(*_pooled(predictions, subset), n_classes=len(class_names))
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.4))
    plot_confusion(cm, class_names, False, axes[0], "counts", n_seeds)
    plot_confusion(cm, class_names, True, axes[1], "row-normalised (recall)", n_seeds)
    name = DATASET_TITLES.get(subset, subset)
    seeds = f", {n_seeds} seeds pooled" if n_seeds > 1 else ""
    title = (f"{label + ' — ' if label else ''}{name}: UF1 {sc['uf1']:.3f}, UAR {sc['uar']:.3f} "
             f"(n={cm.sum() // n_seeds}{seeds})")
    fig.suptitle(synthetic_caption(title, synthetic), fontsize=10)
    fig.tight_layout()
    return fig


def _pooled(predictions: pd.DataFrame, subset: str) -> tuple[np.ndarray, np.ndarray]:
    p = predictions if subset == "composite" else predictions[predictions["dataset"] == subset]
    return p["label"].to_numpy(), p["pred"].to_numpy()


def confusion_figures(run: RunResult | str | os.PathLike, figures_dir: str | os.PathLike | None = None,
                      stem: str = "confusion") -> dict[str, object]:
    """One :func:`confusion_figure` per subset (composite first, then each dataset); saved when
    ``figures_dir`` is given as ``<stem>_<subset>.png/.pdf``. Returns {subset: figure}."""
    run = as_runs(run)[0]
    subsets = ["composite"] + sorted(set(run.predictions["dataset"]) - {"composite"}, key=subset_key)
    if run.predictions["dataset"].nunique() == 1:
        subsets = ["composite"]
    figs = {}
    for subset in subsets:
        label = run.label if run.complete else f"{run.label} (PARTIAL RUN)"
        fig = confusion_figure(run.predictions, subset, run.synthetic, label=label)
        if figures_dir is not None:
            save_figure(fig, figures_dir, f"{stem}_{subset}", synthetic=run.synthetic)
        figs[subset] = fig
    return figs


# ----------------------------------------------------------------------------- uncertainty
VERDICT_COLOURS = {"no detectable effect": "tab:gray", "worse": "tab:red", "better": "tab:green"}


def forest_plot(deltas: pd.DataFrame, reference: str = "full", metrics: Sequence[str] = ("uf1", "uar"),
                title: str = "", synthetic: bool = False):
    """Δ (variant − ``reference``) with its 95 % paired subject-bootstrap interval, one line per
    variant, one panel per metric, a line at zero; grey = no detectable effect, red = worse, green =
    better. ``deltas``: :func:`am3f.results.stats.paired_deltas`."""
    import matplotlib.pyplot as plt

    deltas = deltas[deltas["metric"].isin(metrics) & deltas["delta"].notna()]
    variants = list(dict.fromkeys(deltas["variant"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 0.45 * len(variants) + 1.6),
                             sharey=True, squeeze=False)
    for ax, m in zip(axes[0], metrics):
        d = deltas[deltas["metric"] == m].set_index("variant").reindex(variants)
        y = np.arange(len(variants))[::-1]
        colours = [next((c for k, c in VERDICT_COLOURS.items() if str(v).startswith(k)), "tab:gray")
                   for v in d["verdict"]]
        ax.axvline(0, color="black", lw=0.8)
        ax.hlines(y, d["lo"], d["hi"], colors=colours, lw=2)
        ax.scatter(d["delta"], y, c=colours, zorder=3, s=22)
        for yi, (_, r) in zip(y, d.iterrows()):
            ax.annotate(f"p={r['p']:.3f}", (r["hi"], yi), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=7)
        ax.set_yticks(y, variants, fontsize=8)
        ax.xaxis.set_major_locator(plt.MaxNLocator(5))
        ax.tick_params(axis="x", labelsize=7)
        ax.set_xlabel(f"Δ {m.upper()} vs {reference} (95 % paired subject bootstrap)", fontsize=8)
        ax.margins(x=0.25)
    fig.suptitle(synthetic_caption(title or f"Ablations against {reference}: composite Δ with interval", synthetic),
                 fontsize=9)
    fig.tight_layout()
    return fig


def interval_vs_peers(runs, peers: pd.DataFrame | None = None, title: str = "", synthetic: bool | None = None):
    """How wide the 95 % subject interval of one composite UF1 is, next to the published composite
    UF1 values (``am3f/published_peers.csv``): our run(s) with their interval, each peer's number as a
    dot with our interval's width drawn around it (light, for scale only: a peer's own interval on
    these 68 subjects is unknown but of similar width)."""
    import matplotlib.pyplot as plt

    from am3f.results.stats import subset_intervals
    from am3f.results.tables import is_ours, published_peers, run_title

    runs = as_runs(runs)
    synthetic = any(r.synthetic for r in runs) if synthetic is None else synthetic
    peers = published_peers() if peers is None else peers
    peers = peers[peers["composite_uf1"].notna()]
    ours = [(r.label, subset_intervals(r.predictions, metrics=("uf1",))["composite"]["uf1"]) for r in runs]
    below, above = ours[0][1]["estimate"] - ours[0][1]["ci95"][0], ours[0][1]["ci95"][1] - ours[0][1]["estimate"]
    # "(ours)" only for AM3F-FlowNet; a peer or a user's model trained here is named as itself
    rows = [(f"{label} (ours)" if is_ours(r) else f"{run_title(r, label)}, in our harness", iv["estimate"],
             iv["ci95"], True) for r, (label, iv) in zip(runs, ours)]
    rows += [(p["method"], p["composite_uf1"], (p["composite_uf1"] - below, p["composite_uf1"] + above), False)
             for p in peers.to_dict("records")]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 2.0))
    y = np.arange(len(rows))[::-1]
    for yi, (_, value, (lo, hi), mine) in zip(y, rows):
        colour = "tab:blue" if mine else "tab:orange"
        ax.hlines(yi, lo, hi, colors=colour, lw=3 if mine else 1.5, alpha=1 if mine else 0.35)
        ax.plot(value, yi, "o", color=colour, ms=6)
        ax.annotate(f"{value:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if mine else ""), (hi, yi), xytext=(5, 0),
                    textcoords="offset points", va="center", fontsize=7)
    est = ours[0][1]["estimate"]
    ax.axvspan(est - 0.03, est + 0.03, color="tab:blue", alpha=0.08, lw=0)
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    first = runs[0].predictions
    n_subjects = len(first[["dataset", "subject"]].drop_duplicates())
    ax.set_xlabel(f"composite UF1 (ours: {first['sample_id'].nunique()} samples, {n_subjects} subjects; "
                  "published: MEGC2019 composite, 442 samples, 68 subjects)", fontsize=8)
    ax.margins(x=0.2)
    width = ours[0][1]["ci95"][1] - ours[0][1]["ci95"][0]
    spread = peers["composite_uf1"].max() - peers["composite_uf1"].min() if len(peers) else float("nan")
    note = (f"blue bar: 95 % subject-bootstrap interval of our score (width {width:.3f}); shaded: ±0.03 around it; "
            f"orange: published values (spread {spread:.3f}), light bar = our interval's width for scale.\n"
            "A 0.01–0.03 gap between two single composite scores lies well inside one interval: on its own it "
            "does not show that one method is better (use a paired comparison, `am3f compare`).")
    fig.text(0.01, -0.02, note, fontsize=7, va="top", wrap=True)
    ax.set_title(synthetic_caption(title or "One composite UF1 and its 95 % interval beside published numbers",
                                   synthetic), fontsize=9)
    fig.tight_layout()
    return fig
