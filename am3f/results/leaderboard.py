"""The honest leaderboard: every architecture trained in our harness under one honest protocol (LOSO,
the model after its last epoch), beside what its authors published.

Rows, in this order (the *Protocol* column says which): each architecture **tuned on training
subjects only** (``am3f loso --recipe``, cross-fitted: :mod:`am3f.protocol.tuning`; label ``<arch>-tuned``) and
the **ensemble** of the tuned ones (:mod:`am3f.results.ensemble`); ``<arch>-authors`` under the recipe in the
authors' code (:data:`am3f.models.peers.AUTHORS_RECIPES`); ``<arch>`` under OUR declared schedule
(identical for all). :func:`board_runs` finds or trains them. Columns:

* **published**: the composite UF1 / UAR the authors report (``am3f/published_peers.csv``), with the
  protocol they were obtained under; empty for a declared reduction (another configuration's number
  is not its number);
* **recipe**: per tuned half the candidate it chose (``A: ...`` = tuned on half A, used for the
  subjects of half B), an ensemble's members per half, or the fixed recipe;
* **honest**: our composite UF1 / UAR, mean ± std over seeds and the 95 % subject-bootstrap interval
  (:mod:`am3f.results.stats`);
* **oracle**: the same runs scored the way a "best test epoch per subject" protocol would report them
  (:func:`am3f.results.audit.best_epoch_predictions`): how much of a published number that shortcut can buy;
* **Δ**: paired on the same subjects against tuned AM3F-FlowNet when it is on the board (else its
  declared schedule), with interval and p;
* parameters and training seconds per seed (summed over folds: the work of one core; an ensemble's
  are its members').

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

from am3f.models.registry import ARCHITECTURES, display_name
from am3f.protocol.metrics import megc_scores
from am3f.protocol.run_folder import RunResult, as_runs, load_epoch_scores
from am3f.results.audit import best_epoch_predictions
from am3f.results.stats import HOLDOUT, compare_runs, format_delta, half_gap
from am3f.results.tables import few_subjects_note, format_score, holdout_cell, published_peers, run_holdout, scores_long
from am3f.results.writers import EMPTY, DisplayTable, display_table

# columns of leaderboard_table() that measure the machine, not the method: left out of what is displayed
TIMING_COLUMNS: tuple[str, ...] = ("core-s / seed",)

REFERENCE = "full"


def arch_of(variant: str) -> str:
    """The architecture a named variant trains."""
    from am3f.models.registry import get_variant

    return get_variant(variant)[0].arch


def schedule_of(variant: str) -> str:
    return "authors' recipe" if variant.endswith("-authors") else "ours (declared)"


# how a row's recipe was obtained: its schedule label and its protocol column
KINDS = {
    "tuned": ("tuned (cross-fitted)", "tuned on training subjects only"),
    "ensemble": ("ensemble of tuned", "members chosen on training subjects only"),
    "authors": ("authors' recipe", "authors' recipe, fixed"),
    "declared": ("ours (declared)", "fixed schedule"),
}


def run_kind(run: RunResult) -> str:
    """"tuned" (``am3f loso --recipe``), "ensemble" (:mod:`am3f.results.ensemble`), "authors" or "declared"."""
    if run.config.get("kind") == "ensemble":
        return "ensemble"
    if run.config.get("tuned_recipe"):
        return "tuned"
    return "authors" if str(run.config.get("variant", "")).endswith("-authors") else "declared"


def short_recipe(overrides: dict) -> str:
    """'lr 0.01, ep 60, tau 0' (the declared grid's keys first, in its order)."""
    names = {"lr": "lr", "epochs": "ep", "tau": "tau"}
    keys = [k for k in names if k in overrides] + [k for k in overrides if k not in names]
    return ", ".join(f"{names.get(k, k)} {overrides[k]:g}" if isinstance(overrides[k], float)
                     else f"{names.get(k, k)} {overrides[k]}" for k in keys)


def recipe_text(run: RunResult) -> str:
    """The recipe of a row: per tuned half its choice (A: tuned on half A, used for half B's subjects),
    an ensemble's members per half, else the fixed recipe's optimizer, rate and epochs."""
    kind = run_kind(run)
    if kind == "tuned":
        tuned_on = run.config["tuned_recipe"]["tuned_on"]
        return " | ".join(f"{h}: {short_recipe(t['chosen'])}" for h, t in tuned_on.items())
    if kind == "ensemble":
        return " | ".join(f"{h}: {' + '.join(c['members'])}" for h, c in run.config["chosen"].items())
    cfg = run.config.get("train_config")
    return f"{cfg['optimizer']} lr {cfg['lr']:g}, {cfg['epochs']} ep" if cfg else EMPTY


def reference_of(runs: Mapping[str, RunResult]) -> str | None:
    """The row every Δ is paired against: tuned AM3F-FlowNet when present, else its declared schedule."""
    tuned = [k for k, r in runs.items() if r.config.get("model") == "am3f" and run_kind(r) == "tuned"]
    return tuned[0] if tuned else (REFERENCE if REFERENCE in runs else None)


def _published(arch: str) -> tuple[str, str]:
    peers = published_peers()
    if arch in ARCHITECTURES and ARCHITECTURES[arch].reduced:  # its own configuration was never published
        return EMPTY, f"none: a reduced configuration of {ARCHITECTURES[ARCHITECTURES[arch].reduction_of].display_name}"
    row = peers[peers["arch"] == arch]
    if row.empty or np.isnan(row["composite_uf1"].iloc[0]):
        return EMPTY, row["protocol"].iloc[0] if not row.empty else EMPTY
    r = row.iloc[0]
    uar = EMPTY if np.isnan(r["composite_uar"]) else f"{r['composite_uar']:.4f}"
    return f"{r['composite_uf1']:.4f} / {uar}", r["protocol"]


# the caption of figures/leaderboard.*: notebook 09 and benchmarks/leaderboard_evidence.py write the same table
LEADERBOARD_CAPTION = ("Honest leaderboard: composite LOSO, same samples, last epoch; recipes tuned on training "
                       "subjects only, authors' or declared (Protocol column)")


def board_runs(data, runs_dir, *, variants=(), tuned=(), tuning_dir="", seeds=(0,), variant_seeds=None,
               folds="", epochs: int = 0, workers: int = 0, scheduler: str = "", tune_seeds=(0,)) -> dict:
    """{row label: run directory} of a leaderboard, found or trained (notebook 09 and the benchmarks):
    for each architecture of ``tuned``, its cross-fitted run ("<arch>-tuned"; its recipes.json read
    from ``tuning_dir``, or when it is not there tuned now in ``runs_dir/../tuning``:
    :func:`am3f.protocol.tuning.ensure_tuned`) and, with two or more, their ensemble (:mod:`am3f.results.ensemble`);
    then each variant of ``variants`` (declared or authors' recipe). ``variant_seeds``: seeds of
    single rows (by label), others ``seeds``."""
    from pathlib import Path

    from am3f.protocol.engine import Execution, usable_cores
    from am3f.protocol.launch import ensure_run
    from am3f.protocol.tuning import ensure_tuned
    from am3f.results.ensemble import ensure_ensemble

    variant_seeds = variant_seeds or {}
    made_here = Path(runs_dir).parent / "tuning"  # a tuning not in tuning_dir is made beside the runs
    tuning_execution = Execution(workers=workers or usable_cores(), scheduler=scheduler or None, show_progress=False)
    tunings = {a: ensure_tuned(data, a, tuning_dir or made_here, make_in=made_here, seeds=tune_seeds,
                               execution=tuning_execution) for a in tuned}
    runs = {f"{a}-tuned": ensure_run(data, "", runs_dir=runs_dir, model=a, recipe=tunings[a], folds=folds,
                                     seeds=variant_seeds.get(f"{a}-tuned", seeds), workers=workers, scheduler=scheduler)
            for a in tuned}
    if len(tuned) > 1:  # members chosen on one half's inner CV, used for the other half's subjects
        runs["ensemble"] = ensure_ensemble(data, {a: runs[f"{a}-tuned"] for a in tuned},
                                           {a: t.parent for a, t in tunings.items()}, runs_dir)
    runs.update({v: ensure_run(data, "", runs_dir=runs_dir, model=arch_of(v), variant=v, folds=folds, epochs=epochs,
                               seeds=variant_seeds.get(v, seeds), workers=workers, scheduler=scheduler)
                 for v in variants})
    return runs


# the oracle's per-sample predictions, kept beside a committed run's evidence (the per-epoch scores they are
# picked from live in the run's fold files, which are not committed)
ORACLE_FILE = "oracle_predictions.csv"


def oracle_predictions(run: RunResult) -> pd.DataFrame | None:
    """The predictions of the best test epoch per subject (:func:`am3f.results.audit.best_epoch_predictions`), from
    the run's per-epoch scores or, for committed evidence, its ``oracle_predictions.csv``; None: neither."""
    committed = run.path / ORACLE_FILE
    if committed.is_file():
        return pd.read_csv(committed, dtype={"subject": str})
    return best_epoch_predictions(run) if load_epoch_scores(run.path) else None


def oracle_scores(run: RunResult) -> tuple[float, float] | None:
    """Composite (UF1, UAR), mean over seeds, had the best test epoch per subject been reported."""
    picked = oracle_predictions(run)
    if picked is None:
        return None
    per_seed = [megc_scores(g["label"], g["pred"]) for _, g in picked.groupby("seed")]
    return float(np.mean([s["uf1"] for s in per_seed])), float(np.mean([s["uar"] for s in per_seed]))


def seconds_per_seed(run: RunResult) -> float:
    """Training core-seconds per seed; an ensemble's: its members' (it trains nothing itself)."""
    if run_kind(run) == "ensemble":  # the members either half uses
        used = {a for c in run.config["chosen"].values() for a in c["members"]}
        return float(sum(np.mean(list(m["core_s_per_seed"].values())) for a, m in run.config["members"].items()
                         if a in used and m["core_s_per_seed"]))
    seconds = run.info.get("core_s_per_seed", {})
    return float(np.mean(list(seconds.values()))) if seconds else float("nan")


def leaderboard_rows(runs: Mapping[str, RunResult | str | os.PathLike], reference: str | None = None) -> pd.DataFrame:
    """The leaderboard in long form: one row per run with numbers (for figures and checks). Δ is paired
    against ``reference`` (default :func:`reference_of`: tuned AM3F-FlowNet when it is among the runs)."""
    loaded = dict(zip(runs.keys(), as_runs(runs)))
    reference = reference or reference_of(loaded)
    ref = loaded.get(reference)
    rows = []
    for variant, run in loaded.items():
        kind = run_kind(run)
        arch = "ensemble" if kind == "ensemble" else run.config.get("model") or arch_of(variant)
        long = scores_long(run)
        comp = long[long.subset == "composite"].set_index("metric")
        oracle = oracle_scores(run)
        holdout = run_holdout(run)
        gap = half_gap(run.predictions, holdout) if holdout else None
        ids = sorted(set(run.predictions["sample_id"].astype(str)))
        row = {"variant": variant, "arch": arch,
               "method": method_name(run, variant),
               "schedule": KINDS[kind][0], "protocol": KINDS[kind][1], "recipe": recipe_text(run),
               "reference": variant == reference, "seeds": int(comp.loc["uf1", "n_seeds"]),
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
               "n_subjects": int(comp.loc["uf1", "n_subjects"]),
               "uf1_text": format_score(comp.loc["uf1"]), "uar_text": format_score(comp.loc["uar"]),
               # the clean score (subjects outside the development half) and half A's optimism over it
               "holdout_text": holdout_cell(long),
               "half_gap": gap["delta"] if gap else np.nan,
               "half_gap_text": f"{format_delta(gap['delta'], gap['ci95'])}" if gap else ""}
        row["published"], row["published_protocol"] = (EMPTY, EMPTY) if kind == "ensemble" else _published(arch)
        if ref is not None and variant != reference:
            cmp = compare_runs(run, ref)
            row.update(delta_uf1=cmp["delta_uf1"], delta_uf1_lo=cmp["delta_uf1_ci95"][0],
                       delta_uf1_hi=cmp["delta_uf1_ci95"][1], p_uf1=cmp["p_uf1"])
        rows.append(row)
    return pd.DataFrame(rows)


def leaderboard_table(runs: Mapping[str, RunResult | str | os.PathLike], reference: str | None = None,
                      digits: int = 4) -> pd.DataFrame:
    """The display table (strings): the tuned rows first (the ensemble, then each architecture tuned),
    then authors' recipes, then our declared schedule; within each, by honest composite UF1."""
    rows = leaderboard_rows(runs, reference)
    order = {k: i for i, k in enumerate(("ensemble", "tuned", "authors", "declared"))}
    rows = rows.assign(_kind=[order[next(k for k, v in KINDS.items() if v[0] == s)] for s in rows["schedule"]])
    rows = rows.sort_values(["_kind", "uf1"], ascending=[True, False])
    reference_name = next((r["method"] + (", tuned" if r["schedule"] == KINDS["tuned"][0] else "")
                           for r in rows.to_dict("records") if r["reference"]), "AM3F-FlowNet (ours)")
    out = []
    for r in rows.to_dict("records"):
        delta = (format_delta(r["delta_uf1"], (r["delta_uf1_lo"], r["delta_uf1_hi"]), digits) + f", p {r['p_uf1']:.3f}"
                 if not np.isnan(r.get("delta_uf1", np.nan)) else EMPTY)
        if delta != EMPTY and few_subjects_note(r["n_subjects"]):
            delta += f" ({few_subjects_note(r['n_subjects'])})"
        out.append({
            "Method": r["method"], "Schedule": r["schedule"], "Protocol": r["protocol"], "Recipe": r["recipe"],
            "Published UF1 / UAR": r["published"], "Published protocol": r["published_protocol"],
            "Honest UF1": r["uf1_text"], "Honest UAR": r["uar_text"],
            **({"Hold-out UF1": r["holdout_text"] or EMPTY, "Half A − hold-out UF1": r["half_gap_text"] or EMPTY}
               if rows["holdout_text"].astype(bool).any() else {}),
            "Oracle UF1 / UAR": (f"{r['oracle_uf1']:.4f} / {r['oracle_uar']:.4f}" if not np.isnan(r["oracle_uf1"])
                                 else EMPTY),
            f"Δ UF1 vs {reference_name}": delta,
            "Params": f"{int(r['parameters']):,}" if r["parameters"] and not pd.isna(r["parameters"]) else EMPTY,
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

    from am3f.results.writers import synthetic_caption

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
CROSS_DATABASE_CAPTION = ("Cross-database protocol (one fold per source dataset, trained on the other two), our "
                          "declared schedule, last epoch; Δ vs AM3F-FlowNet paired on the same subjects with 95 % "
                          "interval and p")


def cross_database_table(runs: Mapping[str, RunResult | str | os.PathLike], reference: str = REFERENCE,
                         digits: int = 4) -> pd.DataFrame:
    """Runs of the cross-database split (``am3f loso --split dataset``: each source dataset held out
    in turn, trained on the other two): composite UF1 / UAR over the pooled predictions, the UF1 on
    each held-out dataset (mean ± std over seeds [95 % subject-bootstrap interval]) and the paired
    Δ UF1 against ``reference`` on the same subjects. No published column: the peers' papers report
    LOSO numbers, which are not this protocol's."""
    from am3f.data.dataset import DATASET_TITLES

    loaded = dict(zip(runs.keys(), as_runs(runs)))
    ref = loaded.get(reference)
    out = []
    for variant, run in loaded.items():
        long = scores_long(run).set_index(["subset", "metric"])
        row = {"Method": display_name(arch_of(variant)), "Schedule": schedule_of(variant),
               "UF1": format_score(long.loc[("composite", "uf1")], digits),
               "UAR": format_score(long.loc[("composite", "uar")], digits)}
        if holdout_cell(long.reset_index()):
            row["Hold-out UF1"] = holdout_cell(long.reset_index(), digits=digits)
        for subset in sorted(s for s in long.index.get_level_values(0).unique() if s not in ("composite", HOLDOUT)):
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


# ----------------------------------------------------------------------------- single-database protocol
def single_database_rows(composite: Mapping[str, RunResult | str | os.PathLike],
                         single: Mapping[tuple[str, str], RunResult | str | os.PathLike]) -> pd.DataFrame:
    """The single-database protocol beside the composite one, in long form: per (database, variant), the
    run trained on that database's subjects only (``single[(variant, database)]``, ``am3f loso --datasets``)
    and the same variant's composite run (``composite[variant]``, trained on all three databases) scored on
    that database's samples. Δ = single − composite, paired on the same subjects (95 % interval, p), for
    every subject and for the database's hold-out half (its subjects outside the development half)."""
    from am3f.results.stats import compare_predictions, holdout_subjects, subset_intervals

    comp_runs = dict(zip(composite.keys(), as_runs(composite)))
    rows = []
    for (variant, database), run in zip(single.keys(), as_runs(single)):
        ref = comp_runs.get(variant)
        holdout = holdout_subjects(run.predictions, run.complete) if not run.synthetic else ()
        own = subset_intervals(run.predictions, holdout=holdout)
        row = {"database": database, "variant": variant, "seeds": len(run.seeds), "complete": run.complete,
               "n_subjects": own["composite"]["uf1"]["n_subjects"],
               **{f"{m}_{k}": v for m in ("uf1", "uar") for k, v in
                  (("single", own["composite"][m]["estimate"]), ("single_ci", own["composite"][m]["ci95"]))},
               "holdout_uf1": own[HOLDOUT]["uf1"]["estimate"] if HOLDOUT in own else np.nan,
               "holdout_uf1_ci": own[HOLDOUT]["uf1"]["ci95"] if HOLDOUT in own else (np.nan, np.nan)}
        if ref is not None:
            mine = set(run.predictions["sample_id"].astype(str))
            same = ref.predictions[ref.predictions["sample_id"].astype(str).isin(mine)]
            cmp = compare_predictions(run.predictions, same, names=(f"{variant} on {database}", f"{variant} composite"),
                                      holdout=holdout)
            row.update(uf1_composite=cmp["uf1_b"], uar_composite=cmp["uar_b"],
                       uf1_composite_ci=subset_intervals(same)["composite"]["uf1"]["ci95"],
                       delta_uf1=cmp["delta_uf1"], delta_uf1_ci=tuple(cmp["delta_uf1_ci95"]), p_uf1=cmp["p_uf1"],
                       composite_seeds=len(ref.seeds))
            if HOLDOUT in cmp["subsets"]:
                h = cmp["subsets"][HOLDOUT]
                row.update(delta_holdout_uf1=h["delta_uf1"], delta_holdout_uf1_ci=tuple(h["delta_uf1_ci95"]),
                           p_holdout_uf1=h["p_uf1"])
        rows.append(row)
    return pd.DataFrame(rows)


def single_database_table(composite: Mapping[str, RunResult | str | os.PathLike],
                          single: Mapping[tuple[str, str], RunResult | str | os.PathLike],
                          digits: int = 4) -> pd.DataFrame:
    """Display table of :func:`single_database_rows`: one row per database and method, ordered by
    database, then by single-database UF1."""
    from am3f.data.dataset import DATASET_TITLES
    from am3f.protocol.metrics import subset_key

    rows = single_database_rows(composite, single)
    rows = rows.assign(_db=[subset_key(d) for d in rows["database"]]).sort_values(["_db", "uf1_single"],
                                                                                   ascending=[True, False])
    out = []
    for r in rows.to_dict("records"):
        out.append({
            "Database": DATASET_TITLES.get(r["database"], r["database"]),
            "Method": display_name(arch_of(r["variant"])), "Subjects": r["n_subjects"],
            "Single-database UF1": _score_cell(r["uf1_single"], r["uf1_single_ci"], digits),
            "Single-database UAR": _score_cell(r["uar_single"], r["uar_single_ci"], digits),
            "Hold-out UF1": _score_cell(r["holdout_uf1"], r["holdout_uf1_ci"], digits),
            "Composite-trained UF1 (same samples)": _score_cell(r.get("uf1_composite", np.nan),
                                                                r.get("uf1_composite_ci", (np.nan, np.nan)), digits),
            "Δ UF1 single − composite": _delta_cell(r, "uf1", digits),
            "Δ hold-out UF1": _delta_cell(r, "holdout_uf1", digits),
            "Seeds": r["seeds"] if r["complete"] else f"{r['seeds']} (PARTIAL)",
        })
    return pd.DataFrame(out)


def _score_cell(value: float, interval, digits: int) -> str:
    from am3f.protocol.metrics import format_interval

    return f"{value:.{digits}f} {format_interval(interval)}" if not pd.isna(value) else EMPTY


def _delta_cell(row: dict, metric: str, digits: int) -> str:
    """'+0.0123 [-0.031, 0.052], p 0.612' of ``row['delta_<metric>']`` (its interval and p beside it)."""
    if pd.isna(row.get(f"delta_{metric}", np.nan)):
        return EMPTY
    return format_delta(row[f"delta_{metric}"], row[f"delta_{metric}_ci"], digits) + f", p {row[f'p_{metric}']:.3f}"


# ----------------------------------------------------------------------------- how optimistic is half A
def method_name(run: RunResult, variant: str) -> str:
    """How a table names a run's method: its architecture's display name, or the ensemble."""
    if run_kind(run) == "ensemble":
        return "Ensemble of tuned models"
    return display_name(run.config.get("model") or arch_of(variant))


def half_optimism_table(runs: Mapping[str, RunResult | str | os.PathLike], digits: int = 4) -> pd.DataFrame:
    """Per complete real-data run: the score on all subjects, on the hold-out half (the clean score: subjects
    that never informed a design or schedule decision) and on the development half A (whose subjects chose
    AM3F-FlowNet's design and the declared schedule), and A − hold-out with its 95 % interval over the same
    subject-bootstrap replicates (:func:`am3f.results.stats.half_gap`)."""
    from am3f.results.stats import holdout_subjects

    out = []
    for variant, run in zip(runs.keys(), as_runs(runs)):
        holdout = holdout_subjects(run.predictions, run.complete)
        if run.synthetic or not holdout:
            raise ValueError(f"{variant}: the halves need a complete real-data run")
        long = scores_long(run)
        gap = half_gap(run.predictions, holdout)
        kind = run_kind(run)
        everyone = long[(long.subset == "composite") & (long.metric == "uf1")].iloc[0]
        out.append({"Method": method_name(run, variant), "Schedule": KINDS[kind][0],
                    "UF1, all subjects": format_score(everyone, digits),
                    "Hold-out UF1": holdout_cell(long, digits=digits),
                    "Half A UF1": f"{gap['a']:.{digits}f}",
                    "Half A − hold-out UF1": format_delta(gap["delta"], gap["ci95"], digits) + f", p {gap['p']:.3f}",
                    "Seeds": len(run.seeds)})
    return pd.DataFrame(out)
