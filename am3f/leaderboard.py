"""The honest leaderboard: every architecture trained in our harness under the same fixed protocol,
beside what its authors published.

One row per (method, schedule): ``<arch>`` under OUR declared schedule (identical for all) and, where
it was run, ``<arch>-authors`` under the recipe in the authors' code (:data:`am3f.peers.AUTHORS_RECIPES`),
both scored at the LAST epoch. Columns:

* **published**: the composite UF1 / UAR the authors report (``am3f/published_peers.csv``), with the
  protocol they were obtained under;
* **honest**: our composite UF1 / UAR, mean ± std over seeds and the 95 % subject-bootstrap interval
  (:mod:`am3f.stats`);
* **oracle**: the same runs scored the way a "best test epoch per subject" protocol would report them
  (:func:`am3f.audit.best_epoch_predictions`): how much of a published number that shortcut can buy;
* **Δ vs AM3F-FlowNet**: paired on the same subjects, with interval and p;
* parameters and training seconds per seed (summed over folds: the work of one core).

The core-seconds depend on the machine: they are in ``run.json`` and in the written tables
(``leaderboard.md`` / ``.tex`` / ``.csv``), never in what a notebook displays (:func:`for_display`),
whose text strict nbval compares with the committed outputs on whatever machine runs it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .audit import best_epoch_predictions
from .metrics import megc_scores
from .rundir import RunResult, as_runs, load_epoch_scores
from .stats import compare_runs, format_delta
from .tables import format_score, published_peers, scores_long
from .writers import EMPTY, DisplayTable, display_table
from .zoo import ARCHITECTURES, display_name

# columns of leaderboard_table() that measure the machine, not the method: left out of what is displayed
TIMING_COLUMNS: tuple[str, ...] = ("core-s / seed",)

REFERENCE = "full"


def arch_of(variant: str) -> str:
    """The architecture a named variant trains."""
    from .zoo import get_variant

    return get_variant(variant)[0].arch


def schedule_of(variant: str) -> str:
    return "authors' recipe" if variant.endswith("-authors") else "ours (declared)"


def _published(arch: str) -> tuple[str, str]:
    peers = published_peers()
    # a declared reduction has no published number of its own
    base = (ARCHITECTURES[arch].reduction_of if arch in ARCHITECTURES else "") or arch
    row = peers[peers["arch"] == base]
    if row.empty or np.isnan(row["composite_uf1"].iloc[0]):
        return EMPTY, row["protocol"].iloc[0] if not row.empty else EMPTY
    r = row.iloc[0]
    uar = EMPTY if np.isnan(r["composite_uar"]) else f"{r['composite_uar']:.4f}"
    return f"{r['composite_uf1']:.4f} / {uar}", r["protocol"]


def oracle_scores(run: RunResult) -> tuple[float, float] | None:
    """Composite (UF1, UAR), mean over seeds, had the best test epoch per subject been reported."""
    if not load_epoch_scores(run.path):
        return None
    picked = best_epoch_predictions(run)
    per_seed = [megc_scores(g["label"], g["pred"]) for _, g in picked.groupby("seed")]
    return float(np.mean([s["uf1"] for s in per_seed])), float(np.mean([s["uar"] for s in per_seed]))


def seconds_per_seed(run: RunResult) -> float:
    seconds = run.info.get("core_s_per_seed", {})
    return float(np.mean(list(seconds.values()))) if seconds else float("nan")


def leaderboard_rows(runs: Mapping[str, RunResult | str | os.PathLike], reference: str = REFERENCE) -> pd.DataFrame:
    """The leaderboard in long form: one row per variant with numbers (for figures and checks)."""
    loaded = dict(zip(runs.keys(), as_runs(runs)))
    ref = loaded.get(reference)
    rows = []
    for variant, run in loaded.items():
        arch = arch_of(variant)
        long = scores_long(run)
        comp = long[long.subset == "composite"].set_index("metric")
        oracle = oracle_scores(run)
        ids = sorted(set(run.predictions["sample_id"].astype(str)))
        row = {"variant": variant, "arch": arch, "method": display_name(arch),
               "schedule": schedule_of(variant), "seeds": int(comp.loc["uf1", "n_seeds"]),
               "uf1": comp.loc["uf1", "mean"], "uf1_std": comp.loc["uf1", "std"],
               "uf1_lo": comp.loc["uf1", "ci_lo"], "uf1_hi": comp.loc["uf1", "ci_hi"],
               "uar": comp.loc["uar", "mean"], "uar_std": comp.loc["uar", "std"],
               "uar_lo": comp.loc["uar", "ci_lo"], "uar_hi": comp.loc["uar", "ci_hi"],
               "oracle_uf1": oracle[0] if oracle else np.nan, "oracle_uar": oracle[1] if oracle else np.nan,
               "parameters": run.config.get("parameters"), "seconds_per_seed": seconds_per_seed(run),
               # the samples the scores are computed on (all of the set's for a complete run)
               "samples": len(ids), "samples_digest": hashlib.sha1("\n".join(ids).encode()).hexdigest()[:12],
               "dataset_samples": run.config.get("dataset", {}).get("n_samples"),
               "complete": run.complete, "synthetic": run.synthetic,
               "uf1_text": format_score(comp.loc["uf1"]), "uar_text": format_score(comp.loc["uar"])}
        row["published"], row["published_protocol"] = _published(arch)
        if ref is not None and variant != reference:
            cmp = compare_runs(run, ref)
            row.update(delta_uf1=cmp["delta_uf1"], delta_uf1_lo=cmp["delta_uf1_ci95"][0],
                       delta_uf1_hi=cmp["delta_uf1_ci95"][1], p_uf1=cmp["p_uf1"])
        rows.append(row)
    return pd.DataFrame(rows)


def leaderboard_table(runs: Mapping[str, RunResult | str | os.PathLike], reference: str = REFERENCE,
                      digits: int = 4) -> pd.DataFrame:
    """The display table (strings), sorted by honest composite UF1."""
    rows = leaderboard_rows(runs, reference).sort_values("uf1", ascending=False)
    out = []
    for r in rows.to_dict("records"):
        delta = (format_delta(r["delta_uf1"], (r["delta_uf1_lo"], r["delta_uf1_hi"]), digits) + f", p {r['p_uf1']:.3f}"
                 if not np.isnan(r.get("delta_uf1", np.nan)) else EMPTY)
        out.append({
            "Method": r["method"], "Schedule": r["schedule"],
            "Published UF1 / UAR": r["published"], "Published protocol": r["published_protocol"],
            "Honest UF1": r["uf1_text"], "Honest UAR": r["uar_text"],
            "Oracle UF1 / UAR": (f"{r['oracle_uf1']:.4f} / {r['oracle_uar']:.4f}" if not np.isnan(r["oracle_uf1"])
                                 else EMPTY),
            "Δ UF1 vs AM3F-FlowNet": delta,
            "Params": f"{int(r['parameters']):,}" if r["parameters"] else EMPTY,
            "core-s / seed": f"{r['seconds_per_seed']:.0f}" if not np.isnan(r["seconds_per_seed"]) else EMPTY,
            "Seeds": r["seeds"] if r["complete"] else f"{r['seeds']} (PARTIAL)",
        })
    return pd.DataFrame(out)


def for_display(table: pd.DataFrame) -> DisplayTable:
    """What notebook 09 shows of :func:`leaderboard_table`: no timing column (:data:`TIMING_COLUMNS`)
    and no pandas index; the written tables keep every column."""
    return display_table(table.drop(columns=[c for c in TIMING_COLUMNS if c in table.columns]))


def samples_title(rows: pd.DataFrame) -> str:
    """'The same 442 samples' (from the runs' predictions, not a constant): the samples every run was
    scored on; 'The same 32 of 256 samples (partial runs)' when the runs cover only some folds."""
    counts = sorted({int(n) for n in rows["samples"]})
    same = rows["samples_digest"].nunique() == 1
    text = f"The same {counts[0]}" if same else "-".join(str(n) for n in sorted({counts[0], counts[-1]}))
    totals = sorted({int(n) for n in rows["dataset_samples"].dropna()})
    if len(totals) == 1 and totals[0] != counts[-1]:
        text += f" of {totals[0]}"
    text += " samples"
    if not rows["complete"].all():
        text += " (partial runs)"
    return text


def leaderboard_figure(rows: pd.DataFrame, title: str = "", synthetic: bool = False):
    """Published vs honest vs oracle composite UF1 per method: a dot plot, honest with its interval."""
    import matplotlib.pyplot as plt

    from .writers import synthetic_caption

    rows = rows.sort_values("uf1")
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 2.0))
    y = np.arange(len(rows))
    ax.errorbar(rows["uf1"], y, xerr=[rows["uf1"] - rows["uf1_lo"], rows["uf1_hi"] - rows["uf1"]], fmt="o",
                color="tab:blue", capsize=3, label="honest (ours): mean over seeds, 95 % subject interval")
    ax.plot(rows["oracle_uf1"], y, "x", color="tab:red", label="oracle: best test epoch per subject, same runs")
    published = pd.to_numeric(rows["published"].str.split(" / ").str[0], errors="coerce")
    ax.plot(published, y, "D", mfc="none", color="k", label="published by the authors (their protocol)")
    ax.set_yticks(y, [f"{m}, {s}" for m, s in zip(rows["method"], rows["schedule"])], fontsize=8)
    ax.set_xlabel("composite UF1")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(synthetic_caption(title or f"{samples_title(rows)}, one honest protocol", synthetic), fontsize=9)
    fig.tight_layout()
    # below the figure (saved and shown with bbox_inches="tight"): inside the axes it would hide the markers
    # of whichever method sits in that corner, and an offset in axes units overlaps the x label of a short plot
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False)
    return fig


# ----------------------------------------------------------------------------- cross-database protocol
def cross_database_table(runs: Mapping[str, RunResult | str | os.PathLike], reference: str = REFERENCE,
                         digits: int = 4) -> pd.DataFrame:
    """Runs of the cross-database split (``am3f loso --split dataset``: each source dataset held out
    in turn, trained on the other two): composite UF1 / UAR over the pooled predictions, the UF1 on
    each held-out dataset (mean ± std over seeds [95 % subject-bootstrap interval]) and the paired
    Δ UF1 against ``reference`` on the same subjects. No published column: the peers' papers report
    LOSO numbers, which are not this protocol's."""
    from .data import DATASET_TITLES

    loaded = dict(zip(runs.keys(), as_runs(runs)))
    ref = loaded.get(reference)
    out = []
    for variant, run in loaded.items():
        long = scores_long(run).set_index(["subset", "metric"])
        row = {"Method": display_name(arch_of(variant)), "Schedule": schedule_of(variant),
               "UF1": format_score(long.loc[("composite", "uf1")], digits),
               "UAR": format_score(long.loc[("composite", "uar")], digits)}
        for subset in sorted(s for s in long.index.get_level_values(0).unique() if s != "composite"):
            row[f"{DATASET_TITLES.get(subset, subset)} held out: UF1"] = format_score(long.loc[(subset, "uf1")],
                                                                                        digits)
        delta = EMPTY
        if ref is not None and variant != reference:
            c = compare_runs(run, ref)
            delta = format_delta(c["delta_uf1"], c["delta_uf1_ci95"], digits) + f", p {c['p_uf1']:.3f}"
        row["Δ UF1 vs AM3F-FlowNet"] = delta
        row["Seeds"] = len(run.seeds) if run.complete else f"{len(run.seeds)} (PARTIAL)"
        out.append(row)
    return pd.DataFrame(out)
