"""Tables and figures from run directories: what the results notebooks show and `am3f reproduce` saves.

* **Results**: composite and per-dataset UF1 / UAR / accuracy, mean ± std over seeds
  (:func:`results_table`), beside published peers with a protocol column (:func:`peers_table`),
  an ablation table over several runs (:func:`ablation_table`).
* **Protocol audit**: how much the shortcuts seen in the literature would inflate *our own* numbers,
  from the same saved runs (:func:`protocol_audit`).
* **Writers**: Markdown and LaTeX (:func:`write_table`), PNG + PDF figures (:func:`save_figure`),
  confusion-matrix heatmaps, counts and row-normalised (:func:`confusion_figure`).

Every table and figure of a run on the synthetic set is labelled SYNTHETIC.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .data import CLASS_NAMES, DATASET_TITLES
from .errors import AM3FError
from .loso import load_predictions
from .metrics import confusion_matrix, megc_scores, score_table

METRICS: tuple[str, ...] = ("uf1", "uar", "accuracy")
METRIC_TITLES = {"uf1": "UF1", "uar": "UAR", "accuracy": "Acc.", "macro_precision": "macro P"}
SUBSET_ORDER: tuple[str, ...] = ("composite", "casme2", "samm", "smic", "synthetic")
SYNTHETIC_TAG = "SYNTHETIC"
EMPTY = "—"


# ----------------------------------------------------------------------------- runs
@dataclass
class RunResult:
    """A finished (or partial) LOSO run as read back from disk."""

    path: Path
    predictions: pd.DataFrame
    config: dict
    info: dict
    label: str = ""

    @property
    def synthetic(self) -> bool:
        return bool(self.config.get("dataset", {}).get("synthetic"))

    @property
    def seeds(self) -> list[int]:
        return sorted(int(s) for s in self.predictions["seed"].unique())

    @property
    def complete(self) -> bool:
        return bool(self.info.get("complete"))

    def describe(self) -> str:
        tag = f" [{SYNTHETIC_TAG}]" if self.synthetic else ""
        done = self.info.get("folds_done", {})
        n_sub = self.config.get("dataset", {}).get("n_subjects")
        state = "complete" if self.complete else f"PARTIAL: folds done per seed {done} of {n_sub}"
        return f"{self.label or self.path.name}{tag}: seeds {self.seeds}, {state}"


def load_run(run_dir: str | os.PathLike, label: str | None = None) -> RunResult:
    """Read a run directory (merging finished folds first, so partial runs work too)."""
    path = Path(run_dir)
    preds = load_predictions(path)
    config = json.loads((path / "config.json").read_text())
    info = json.loads((path / "run.json").read_text())
    if label is None:
        label = config.get("variant") or config.get("model") or path.name
    return RunResult(path=path, predictions=preds, config=config, info=info, label=str(label))


def _as_runs(runs: RunResult | str | os.PathLike | Mapping[str, RunResult | str | os.PathLike]
             | Sequence[RunResult | str | os.PathLike]) -> list[RunResult]:
    if isinstance(runs, RunResult):
        return [runs]
    if isinstance(runs, (str, os.PathLike)):
        return [load_run(runs)]
    if isinstance(runs, Mapping):
        return [r if isinstance(r, RunResult) else load_run(r, label=k) for k, r in runs.items()]
    return [r if isinstance(r, RunResult) else load_run(r) for r in runs]


def any_synthetic(runs: Iterable[RunResult]) -> bool:
    return any(r.synthetic for r in runs)


def synthetic_caption(caption: str, synthetic: bool) -> str:
    """Prefix a caption/title so no synthetic result can be mistaken for a real one."""
    return f"[{SYNTHETIC_TAG} DATA] {caption}" if synthetic and SYNTHETIC_TAG not in caption else caption


# ----------------------------------------------------------------------------- results
def _subset_key(s: str) -> tuple[int, str]:
    return (SUBSET_ORDER.index(s) if s in SUBSET_ORDER else len(SUBSET_ORDER), s)


def format_mean_std(mean: float, std: float | None = None, n_seeds: int = 1, digits: int = 4) -> str:
    """'0.7209' for one seed, '0.7209 ± 0.0123' for several; '—' for a missing value."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return EMPTY
    if n_seeds > 1 and std is not None and not math.isnan(std):
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    return f"{mean:.{digits}f}"


def scores_long(runs, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Long table: one row per (method, subset, metric) with mean, std (ddof=1) over seeds, n_seeds."""
    rows = []
    for run in _as_runs(runs):
        table = score_table(run.predictions)
        for subset, g in table.groupby("subset", sort=False):
            for m in metrics:
                vals = g[m].to_numpy(dtype=float)
                rows.append({"method": run.label, "subset": subset, "metric": m, "mean": float(vals.mean()),
                             "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
                             "n_seeds": len(vals), "n": int(g["n"].iloc[0]), "synthetic": run.synthetic})
    return pd.DataFrame(rows)


def results_table(runs, metrics: Sequence[str] = METRICS, digits: int = 4) -> pd.DataFrame:
    """Wide display table: one row per method, columns '<Subset> <METRIC>' holding 'mean ± std'.

    ``runs``: a run directory, a :class:`RunResult`, a list of them, or a {label: run} mapping.
    """
    long = scores_long(runs, metrics)
    subsets = sorted(long["subset"].unique(), key=_subset_key)
    out = []
    for method, g in long.groupby("method", sort=False):
        row = {"Method": method}
        for subset in subsets:
            for m in metrics:
                hit = g[(g.subset == subset) & (g.metric == m)]
                title = f"{DATASET_TITLES.get(subset, subset.title())} {METRIC_TITLES[m]}"
                row[title] = (format_mean_std(hit["mean"].iloc[0], hit["std"].iloc[0], int(hit["n_seeds"].iloc[0]),
                                              digits) if len(hit) else EMPTY)
        row["Seeds"] = int(g["n_seeds"].max())
        out.append(row)
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------- peers
@dataclass(frozen=True)
class PeerResult:
    """Published (or independently measured) numbers of a peer; None = not published / not verified."""

    method: str
    protocol: str
    source: str
    composite: tuple[float | None, float | None] = (None, None)  # (UF1, UAR)
    casme2: tuple[float | None, float | None] = (None, None)
    samm: tuple[float | None, float | None] = (None, None)
    smic: tuple[float | None, float | None] = (None, None)
    note: str = ""


LOSO_FIXED = "LOSO, fixed schedule, last epoch"
# Only numbers we could check against the paper/abstract (or measured ourselves) are filled in;
# every other cell stays empty rather than guessed.
PEERS: tuple[PeerResult, ...] = (
    PeerResult(
        method="STSTNet (published weights, our evaluation)",
        protocol="LOSO, published per-subject weights (training protocol of the authors unknown)",
        source="our `am3f evaluate-weights` on the published STSTNet per-subject weights (licence-restricted shared data)",
        composite=(0.7209, 0.7250),
        note="recomputed live when the shared data is present",
    ),
    PeerResult(
        method="STSTNet (as published)",
        protocol="LOSO; published 'UAR' is macro precision",
        source="Liong et al. 2019, arXiv:1902.03634 (abstract: UF1 0.7353, 'UAR' 0.7605 composite; "
               "'UAR' 0.7013 SMIC, 0.8686 CASME II, 0.6810 SAMM)",
        composite=(0.7353, 0.7605), casme2=(None, 0.8686), samm=(None, 0.6810), smic=(None, 0.7013),
        note="the authors' own log gives macro recall 0.7186 (composite): their 'UAR' is macro precision",
    ),
    PeerResult(
        method="FeatRef",
        protocol="LOSO (MEGC2019 composite)",
        source="Zhou et al., 'Feature refinement: an expression-specific feature learning and fusion method "
               "for micro-expression recognition', Pattern Recognition 2022 (arXiv:2103.07056)",
        composite=(0.7838, 0.7832), casme2=(0.8915, None), samm=(0.7372, None), smic=(0.7011, None),
    ),
    PeerResult(
        method="HTNet",
        protocol="LOSO, best test epoch picked per subject",
        source="Wang et al., 'HTNet for micro-expression recognition', Neurocomputing 602 (2024), "
               "arXiv:2307.14637; main_HTNet.py keeps each subject's best test epoch",
        composite=(0.8603, 0.8475),
        note="epoch picked on the test subject: optimistic (see 07_protocol_audit)",
    ),
    PeerResult(
        method="EMR",
        protocol="LOSO (MEGC2019 composite)",
        source="Liu et al., 'A neural micro-expression recognizer', FG 2019 (MEGC2019) -- numbers not verified",
        note="left empty: we could not check the published table",
    ),
)


def peers_frame(peers: Sequence[PeerResult] = PEERS) -> pd.DataFrame:
    """Peers as a display table with a protocol and a source column ('—' = not published/verified)."""
    rows = []
    for p in peers:
        row = {"Method": p.method, "Protocol": p.protocol}
        for subset in ("composite", "casme2", "samm", "smic"):
            uf1, uar = getattr(p, subset)
            title = DATASET_TITLES.get(subset, subset.title())
            row[f"{title} UF1"] = format_mean_std(uf1) if uf1 is not None else EMPTY
            row[f"{title} UAR"] = format_mean_std(uar) if uar is not None else EMPTY
        row["Source"] = p.source + (f" ({p.note})" if p.note else "")
        rows.append(row)
    return pd.DataFrame(rows)


def peers_table(ours=None, peers: Sequence[PeerResult] = PEERS, ststnet_run: str | os.PathLike | None = None,
                our_protocol: str = LOSO_FIXED) -> pd.DataFrame:
    """Our run(s) (UF1 / UAR mean ± std over seeds) above the peers, same columns.

    ``ststnet_run``: a run directory of ``am3f evaluate-weights``; when given, its live numbers replace
    the stored ones in the 'published weights, our evaluation' row.
    """
    peers = list(peers)
    if ststnet_run is not None:
        live = load_run(ststnet_run)
        sc = {r["subset"]: r for r in score_table(live.predictions).to_dict("records")}
        pick = {s: ((sc[s]["uf1"], sc[s]["uar"]) if s in sc else (None, None))
                for s in ("composite", "casme2", "samm", "smic")}
        peers = [PeerResult(p.method, p.protocol, p.source + " -- recomputed now", **pick,
                            note="") if p.method.startswith("STSTNet (published weights") else p for p in peers]
    frames = []
    if ours is not None:
        mine = results_table(ours, metrics=("uf1", "uar"))
        mine["Method"] = [f"AM3F-FlowNet, ours ({m})" for m in mine["Method"]]
        mine.insert(1, "Protocol", our_protocol)
        mine["Source"] = ["this repository" + (f" [{SYNTHETIC_TAG} DATA: not comparable]" if r.synthetic else "")
                          for r in _as_runs(ours)]
        mine = mine.drop(columns=["Seeds"])
        frames.append(mine)
    frames.append(peers_frame(peers))
    table = pd.concat(frames, ignore_index=True)
    cols = ["Method", "Protocol"] + [c for c in table.columns if c not in ("Method", "Protocol", "Source")] + ["Source"]
    return table[cols].fillna(EMPTY)


# ----------------------------------------------------------------------------- ablations
def ablation_table(runs: Mapping[str, RunResult | str | os.PathLike], reference: str | None = "full",
                   descriptions: Mapping[str, str] | None = None, digits: int = 4) -> pd.DataFrame:
    """One row per variant: composite UF1 / UAR / accuracy (mean ± std) and Δ UF1 vs ``reference``.

    ``runs`` maps a variant name to its run directory. Descriptions default to the model module's
    variant list when it is importable.
    """
    if descriptions is None:
        try:
            from .model import VARIANTS

            descriptions = {k: v[2] for k, v in VARIANTS.items()}
        except ImportError:  # pragma: no cover - model module not there
            descriptions = {}
    long = scores_long(runs, metrics=METRICS)
    comp = long[long.subset == "composite"]
    ref_uf1 = None
    if reference is not None and reference in set(comp.method):
        ref_uf1 = float(comp[(comp.method == reference) & (comp.metric == "uf1")]["mean"].iloc[0])
    rows = []
    for method, g in comp.groupby("method", sort=False):
        row = {"Variant": method, "What changes": descriptions.get(method, "")}
        for m in METRICS:
            hit = g[g.metric == m].iloc[0]
            row[f"Composite {METRIC_TITLES[m]}"] = format_mean_std(hit["mean"], hit["std"], int(hit["n_seeds"]), digits)
        uf1 = float(g[g.metric == "uf1"]["mean"].iloc[0])
        row["Δ UF1"] = EMPTY if ref_uf1 is None or method == reference else f"{uf1 - ref_uf1:+.{digits}f}"
        row["Seeds"] = int(g["n_seeds"].max())
        rows.append(row)
    return pd.DataFrame(rows)


def find_variant_runs(root: str | os.PathLike, pattern: str = "*") -> dict[str, Path]:
    """Run directories under ``root`` (one per variant, named by the variant in config.json or the folder)."""
    out: dict[str, Path] = {}
    for cfg in sorted(Path(root).glob(f"{pattern}/config.json")):
        config = json.loads(cfg.read_text())
        if not list((cfg.parent / "folds").glob("s*_f*.json")):
            continue
        out[str(config.get("variant") or cfg.parent.name)] = cfg.parent
    return out


# ----------------------------------------------------------------------------- protocol audit
def load_epoch_scores(run_dir: str | os.PathLike) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """{(seed, fold): (epoch_scores (n_epochs, n_test, n_classes), sample_ids)} of every recorded fold."""
    out = {}
    for path in sorted((Path(run_dir) / "folds").glob("s*_f*.npz")):
        seed, fold = path.stem[1:].split("_f")
        with np.load(path, allow_pickle=False) as z:
            out[(int(seed), int(fold))] = (z["epoch_scores"], z["sample_ids"].astype(str))
    return out


def best_epoch_predictions(run: RunResult | str | os.PathLike, criterion: str = "accuracy") -> pd.DataFrame:
    """The predictions a 'best test epoch per subject' protocol would report (a leak, for the audit only).

    For every (seed, fold) the epoch whose predictions on the held-out subject score best
    (``accuracy``: most correct; ties -> earliest epoch) replaces the fixed-schedule prediction.
    """
    run = _as_runs(run)[0]
    epochs = load_epoch_scores(run.path)
    if not epochs:
        raise AM3FError(f"{run.path}: no per-epoch test scores (folds/*.npz) were recorded in this run")
    preds = run.predictions.copy()
    preds["picked_epoch"] = -1
    for (seed, fold), (scores, ids) in epochs.items():
        mask = (preds.seed == seed) & (preds.fold == fold)
        part = preds[mask].set_index("sample_id").loc[ids]
        labels = part["label"].to_numpy()
        per_epoch = scores.argmax(axis=2)  # (n_epochs, n_test)
        if criterion == "accuracy":
            quality = (per_epoch == labels[None, :]).mean(axis=1)
        elif criterion == "uf1":
            quality = np.array([megc_scores(labels, p)["uf1"] for p in per_epoch])
        else:
            raise AM3FError(f"unknown criterion {criterion!r} (accuracy or uf1)")
        best = int(np.argmax(quality))
        order = {sid: i for i, sid in enumerate(ids)}
        rows = preds.index[mask]
        preds.loc[rows, "pred"] = [int(per_epoch[best, order[s]]) for s in preds.loc[rows, "sample_id"]]
        preds.loc[rows, "picked_epoch"] = best
    return preds


def protocol_audit(run: RunResult | str | os.PathLike, digits: int = 4) -> pd.DataFrame:
    """Composite UF1 / UAR of one run under the honest protocol and under each peer shortcut.

    Rows: fixed schedule, mean over seeds (honest) | best single seed | macro precision reported as
    'UAR' | best test epoch per subject (when per-epoch scores were recorded). Δ columns are against
    the honest row.
    """
    run = _as_runs(run)[0]
    table = score_table(run.predictions)
    comp = table[table.subset == "composite"]
    n_seeds = len(comp)
    honest_uf1, honest_uar = comp["uf1"].mean(), comp["uar"].mean()
    rows = [("Fixed schedule, mean over seeds (ours)", honest_uf1, honest_uar, "UAR = macro recall")]
    best = comp.sort_values("uf1", ascending=False).iloc[0]
    rows.append((f"Best single seed of {n_seeds} (seed {int(best['seed'])})", best["uf1"], best["uar"],
                 "report the luckiest seed"))
    rows.append(("Macro precision reported as 'UAR'", honest_uf1, comp["macro_precision"].mean(),
                 "the STSTNet paper's 'UAR'"))
    if load_epoch_scores(run.path):
        picked = score_table(best_epoch_predictions(run))
        pc = picked[picked.subset == "composite"]
        rows.append(("Best test epoch per subject", pc["uf1"].mean(), pc["uar"].mean(),
                     "HTNet-style: epoch chosen on the test subject"))
        rows.append(("Best test epoch per subject + best seed", pc["uf1"].max(),
                     pc.sort_values("uf1", ascending=False)["uar"].iloc[0], "both shortcuts"))
    out = pd.DataFrame(rows, columns=["Protocol", "UF1", "UAR", "What it does"])
    out["Δ UF1"] = out["UF1"] - honest_uf1
    out["Δ UAR"] = out["UAR"] - honest_uar
    for c in ("UF1", "UAR"):
        out[c] = out[c].map(lambda v: f"{v:.{digits}f}")
    for c in ("Δ UF1", "Δ UAR"):
        out[c] = out[c].map(lambda v: f"{v:+.{digits}f}")
    return out[["Protocol", "UF1", "UAR", "Δ UF1", "Δ UAR", "What it does"]]


def epoch_curve(run: RunResult | str | os.PathLike) -> pd.DataFrame:
    """Composite UF1 / UAR of every epoch's test predictions (pooled over folds), per seed.

    Shows how much the test score moves with the epoch, i.e. how much room epoch-picking has.
    Only folds that recorded per-epoch scores take part.
    """
    run = _as_runs(run)[0]
    epochs = load_epoch_scores(run.path)
    if not epochs:
        raise AM3FError(f"{run.path}: no per-epoch test scores (folds/*.npz) were recorded in this run")
    labels = dict(zip(zip(run.predictions.seed, run.predictions.sample_id), run.predictions.label))
    n_epochs = min(s.shape[0] for s, _ in epochs.values())
    rows = []
    for seed in sorted({s for s, _ in epochs}):
        folds = [(sc, ids) for (s, _), (sc, ids) in epochs.items() if s == seed]
        y = np.concatenate([[labels[(seed, i)] for i in ids] for _, ids in folds])
        for e in range(n_epochs):
            p = np.concatenate([sc[e].argmax(axis=1) for sc, _ in folds])
            r = megc_scores(y, p)
            rows.append({"seed": seed, "epoch": e + 1, "uf1": r["uf1"], "uar": r["uar"]})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- writers
def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return EMPTY
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def to_markdown(df: pd.DataFrame, caption: str | None = None) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency); caption as a bold line above."""
    cols = [str(c) for c in df.columns]
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = [f"**{caption}**", ""] if caption else []
    lines.append("| " + " | ".join(esc(c) for c in cols) + " |")
    lines.append("|" + "|".join("---" for _ in cols) + "|")
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(esc(_cell(v)) for v in row) + " |")
    return "\n".join(lines) + "\n"


_LATEX_ESCAPES = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
                  "±": r"$\pm$", "—": "---", "Δ": r"$\Delta$", "–": "--"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def to_latex(df: pd.DataFrame, caption: str | None = None, label: str | None = None) -> str:
    """A booktabs ``table`` environment (needs \\usepackage{booktabs}); text columns left, others centred."""
    cols = [str(c) for c in df.columns]
    align = "".join("l" if c in ("Method", "Protocol", "Source", "Variant", "What changes", "What it does")
                    else "c" for c in cols)
    lines = [r"\begin{table}[t]", r"\centering", r"\small"]
    if caption:
        lines.append(r"\caption{" + latex_escape(caption) + "}")
    if label:
        lines.append(r"\label{" + label + "}")
    lines += [r"\begin{tabular}{" + align + "}", r"\toprule",
              " & ".join(latex_escape(c) for c in cols) + r" \\", r"\midrule"]
    for row in df.itertuples(index=False):
        lines.append(" & ".join(latex_escape(_cell(v)) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(df: pd.DataFrame, figures_dir: str | os.PathLike, stem: str, caption: str = "",
                synthetic: bool = False) -> dict[str, Path]:
    """Write ``<stem>.md`` and ``<stem>.tex`` (and ``<stem>.csv``) into ``figures_dir``; returns the paths."""
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    if synthetic:
        stem = stem if stem.endswith("_synthetic") else f"{stem}_synthetic"
    caption = synthetic_caption(caption, synthetic)
    paths = {"md": out / f"{stem}.md", "tex": out / f"{stem}.tex", "csv": out / f"{stem}.csv"}
    paths["md"].write_text(to_markdown(df, caption))
    paths["tex"].write_text(to_latex(df, caption, label=f"tab:{stem}"))
    df.to_csv(paths["csv"], index=False)
    return paths


PER_SAMPLE_DIR = "per-sample"
PER_SAMPLE_NOTE = """# per-sample figures of licence-restricted data

Each figure here renders individual samples (flow images, Grad-CAM maps over them) of a
licence-restricted data set. They are for your own inspection: keep them local and do not publish or
commit them. Aggregate figures and tables sit one folder up.
"""


def save_figure(fig, figures_dir: str | os.PathLike, stem: str, synthetic: bool = False,
                formats: Sequence[str] = ("png", "pdf"), dpi: int = 150, per_sample: bool = False) -> list[Path]:
    """Save a matplotlib figure as PNG and PDF; synthetic figures get a ``_synthetic`` suffix.

    ``per_sample=True`` marks a figure that renders individual samples: for real (licence-restricted)
    data it goes to ``figures_dir/per-sample/``, away from the aggregate outputs that may be published.
    """
    restricted = per_sample and not synthetic
    out = Path(figures_dir) / PER_SAMPLE_DIR if restricted else Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    if restricted:
        (out / "README.md").write_text(PER_SAMPLE_NOTE)
    if synthetic and not stem.endswith("_synthetic"):
        stem = f"{stem}_synthetic"
    paths = []
    for fmt in formats:
        p = out / f"{stem}.{fmt}"
        # a fixed creation date keeps PDFs byte-stable between reruns
        meta = {"CreationDate": None} if fmt == "pdf" else ({"Software": None} if fmt == "png" else None)
        fig.savefig(p, dpi=dpi, bbox_inches="tight", metadata=meta)
        paths.append(p)
    return paths


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
    title = f"{label + ' — ' if label else ''}{name}: UF1 {sc['uf1']:.3f}, UAR {sc['uar']:.3f} (n={cm.sum() // n_seeds}{seeds})"
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
    run = _as_runs(run)[0]
    subsets = ["composite"] + sorted(set(run.predictions["dataset"]) - {"composite"}, key=_subset_key)
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


# ----------------------------------------------------------------------------- misc for notebooks
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


def plot_flow_images(x: np.ndarray, titles: Sequence[str] | None = None, channel_names: Sequence[str] = ("u", "v", "strain"),
                     title: str = "", synthetic: bool = False):
    """Rows = samples, columns = the three [0, 1] channels of each 28x28 flow image (what the model sees)."""
    import matplotlib.pyplot as plt

    x = np.asarray(x)
    if x.ndim == 3:
        x = x[None]
    n = len(x)
    fig, axes = plt.subplots(n, 3, figsize=(6.0, 1.9 * n + 0.4), squeeze=False)
    for i in range(n):
        for c, cname in enumerate(channel_names):
            ax = axes[i, c]
            ax.imshow(x[i, c], cmap="RdBu_r" if cname in ("u", "v") else "magma", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(cname, fontsize=9)
            if c == 0 and titles is not None:
                ax.set_ylabel(titles[i], fontsize=7)
    if title or synthetic:
        fig.suptitle(synthetic_caption(title, synthetic), fontsize=9)
    fig.tight_layout()
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


# ----------------------------------------------------------------------------- flow checks
@dataclass
class SyntheticPair:
    """One synthetic sample's frames (full frame, uint8), face box and ground-truth flow (px)."""

    sample_id: str
    onset: np.ndarray
    apex: np.ndarray
    box: tuple[int, int, int, int]
    u_true: np.ndarray
    v_true: np.ndarray

    def crop(self, a: np.ndarray) -> np.ndarray:
        x, y, w, h = self.box
        return a[y:y + h, x:x + w]


def synthetic_pair(root: str | os.PathLike, sample_id: str) -> SyntheticPair:
    """Frames and ground truth of a synthetic sample (``frames/`` and ``gt/`` of the synthetic set)."""
    from .frames import read_frame

    root = Path(root)
    gt = root / "gt" / f"{sample_id}.npz"
    if not gt.is_file():
        raise AM3FError(f"{gt}: no ground truth (is {root} the synthetic set?)")
    with np.load(gt) as z:
        u, v, box = z["u"], z["v"], tuple(int(t) for t in z["box"])
    return SyntheticPair(sample_id, read_frame(root / "frames" / f"{sample_id}_onset.png"),
                         read_frame(root / "frames" / f"{sample_id}_apex.png"), box, u, v)


def flow_vs_truth(root: str | os.PathLike, sample_ids: Sequence[str], methods: Sequence[str] = ("tvl1",),
                  border: int = 4) -> pd.DataFrame:
    """End-point error (px) of each flow method against the synthetic ground truth, on the face crop.

    One row per (sample, method); the crop's outer ``border`` pixels are ignored (no context there).
    """
    from .flow import compute_flow, endpoint_error

    rows = []
    for sid in sample_ids:
        pair = synthetic_pair(root, sid)
        a, b = pair.crop(pair.onset), pair.crop(pair.apex)
        ut, vt = pair.crop(pair.u_true), pair.crop(pair.v_true)
        for m in methods:
            flow = compute_flow(a, b, m)
            rows.append({"sample_id": sid, "method": m, "EPE px": endpoint_error(flow, ut, vt, border),
                         "true max motion px": float(np.hypot(ut, vt).max())})
    return pd.DataFrame(rows)


# the real GIFs that have a community reference flow image in megc2019-composite/flows
REFERENCE_GIFS: tuple[str, ...] = ("006_006_1_2", "s03_s03_po_11")


def real_gif_correlations(shared_dir: str | os.PathLike, names: Sequence[str] = REFERENCE_GIFS,
                          method: str = "tvl1") -> pd.DataFrame:
    """Pearson r per channel between our flow image of a real onset/apex GIF and its reference image.

    Numbers only: nothing here draws the (licence-restricted, identifiable) faces.
    """
    from .data import flow_image_path
    from .flow import compare_to_reference, compute_flow, flow_to_image
    from .frames import load_pair

    shared = Path(shared_dir)
    rows = []
    for name in names:
        gif = shared / "real-onset-apex" / f"{name}.gif"
        sub, fname = name.split("_", 1)
        ref = flow_image_path(shared / "megc2019-composite" / "flows", sub, fname)
        if not gif.is_file() or not ref.is_file():
            continue
        pair = load_pair(gif)
        ours = flow_to_image(compute_flow(pair.onset, pair.apex, method))
        r = compare_to_reference(ours, ref)
        rows.append({"sample": name, "method": method, **{f"r {k}": v for k, v in r.items()}})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- explorer
def explorer_view(run: RunResult, data, sample_id: str, model=None, show_cam: bool = True):
    """Static view of one sample: u, v, strain, its class scores per seed, and (with ``model``, the
    model of the fold that held this sample out) the Grad-CAM of every branch. Returns the figure."""
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
            ax.set_title(f"Grad-CAM {name}", fontsize=9)
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
    :func:`am3f.reproduce.fold_model`); without it no CAM is drawn.
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
    cam = w.Checkbox(value=cam_default and model_for_subject is not None, description="Grad-CAM",
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
