"""Result tables from run directories: ours (mean ± std over seeds and the 95 % subject-bootstrap
interval), beside published peers, and ablations (paired Δ against the reference with interval, p and
a verdict). Display tables are pandas DataFrames of strings; :mod:`am3f.results.writers` saves them."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from importlib import resources

import pandas as pd

from am3f.data.dataset import DATASET_TITLES
from am3f.protocol.metrics import format_interval, score_table, seed_mean_std, subset_key
from am3f.protocol.run_folder import RunResult, as_runs, load_run
from am3f.results.stats import (
    HOLDOUT,
    HOLDOUT_TITLE,
    MIN_SUBJECTS,
    format_delta,
    holdout_subjects,
    paired_deltas,
    subset_intervals,
)
from am3f.results.writers import EMPTY, SYNTHETIC_TAG

METRICS: tuple[str, ...] = ("uf1", "uar", "accuracy")
METRIC_TITLES = {"uf1": "UF1", "uar": "UAR", "accuracy": "Acc.", "macro_precision": "macro P"}
PEER_SUBSETS: tuple[str, ...] = ("composite", "casme2", "samm", "smic")
LOSO_FIXED = "LOSO, fixed schedule, last epoch"


def format_mean_std(mean: float, std: float | None = None, n_seeds: int = 1, digits: int = 4) -> str:
    """'0.7209' for one seed, '0.7209 ± 0.0123' for several; '—' for a missing value."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return EMPTY
    if n_seeds > 1 and std is not None and not math.isnan(std):
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    return f"{mean:.{digits}f}"


def run_holdout(run: RunResult) -> tuple[str, ...]:
    """The hold-out half's subjects of a complete run on REAL data (:func:`am3f.results.stats.holdout_subjects`);
    ``()`` for the synthetic set (no decision was ever made on its halves) and for partial runs."""
    return () if run.synthetic else holdout_subjects(run.predictions, run.complete)


def scores_long(runs, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Long table: one row per (method, subset, metric) with mean, std (ddof=1) over seeds, n_seeds and
    the 95 % subject-bootstrap interval ci_lo, ci_hi (:mod:`am3f.results.stats`); for a complete real-data run
    the subset 'hold-out' too (:func:`run_holdout`)."""
    rows = []
    for run in as_runs(runs):
        holdout = run_holdout(run)
        table = score_table(run.predictions, holdout=holdout)
        intervals = subset_intervals(run.predictions, metrics=tuple(metrics), holdout=holdout)
        for subset, g in table.groupby("subset", sort=False):
            for m in metrics:
                mean, std = seed_mean_std(g[m])
                lo, hi = intervals[subset][m]["ci95"]
                rows.append({"method": run.label, "subset": subset, "metric": m, "mean": mean, "std": std,
                             "ci_lo": lo, "ci_hi": hi, "n_seeds": len(g), "n": int(g["n"].iloc[0]),
                             "n_subjects": intervals[subset][m]["n_subjects"], "synthetic": run.synthetic})
    return pd.DataFrame(rows)


def format_score(hit: pd.Series, digits: int = 4, interval: bool = True) -> str:
    """One cell of a results table: '0.7094 ± 0.0095 [0.643, 0.773]' (± std over seeds when there are
    several, [95 % subject-bootstrap interval] when ``interval``)."""
    text = format_mean_std(hit["mean"], hit["std"], int(hit["n_seeds"]), digits)
    return f"{text} {format_interval((hit['ci_lo'], hit['ci_hi']))}".rstrip() if interval else text


def results_table(runs, metrics: Sequence[str] = METRICS, digits: int = 4, intervals: bool = True) -> pd.DataFrame:
    """Wide display table: one row per method, columns '<Subset> <METRIC>' holding
    'mean ± std [lo, hi]' (the interval: 95 % subject bootstrap, :mod:`am3f.results.stats`).

    ``runs``: a run directory, a :class:`RunResult`, a list of them, or a {label: run} mapping.
    """
    runs = as_runs(runs)  # read once
    long = scores_long(runs, metrics)
    subsets = sorted(long["subset"].unique(), key=subset_key)
    # single-database runs (am3f loso --datasets): their pooled subset is those databases, not the composite set
    selections = {tuple(r.config.get("dataset", {}).get("datasets") or ()) for r in runs}
    pooled = " + ".join(DATASET_TITLES.get(d, d) for d in next(iter(selections))) if len(selections) == 1 else ""
    out = []
    for method, g in long.groupby("method", sort=False):
        row = {"Method": method}
        for subset in subsets:
            for m in metrics:
                hit = g[(g.subset == subset) & (g.metric == m)]
                title = f"{pooled if subset == 'composite' and pooled else subset_title(subset)} {METRIC_TITLES[m]}"
                row[title] = format_score(hit.iloc[0], digits, intervals) if len(hit) else EMPTY
        row["Seeds"] = int(g["n_seeds"].max())
        note = few_subjects_note(int(g[g.subset == "composite"]["n_subjects"].max()))
        if note:
            row["Note"] = note
        out.append(row)
    return pd.DataFrame(out)


def few_subjects_note(n_subjects: int) -> str:
    """'' or a short cell saying the intervals rest on too few subjects (:data:`am3f.results.stats.MIN_SUBJECTS`)."""
    if n_subjects >= MIN_SUBJECTS:
        return ""
    return f"{n_subjects} subject{'' if n_subjects == 1 else 's'}: intervals not reliable"


def subset_title(subset: str) -> str:
    """'CASME II', 'Hold-out', ...: a subset's name in table headers."""
    return HOLDOUT_TITLE if subset == HOLDOUT else DATASET_TITLES.get(subset, subset.title())


def holdout_cell(long: pd.DataFrame, method: str | None = None, digits: int = 4) -> str:
    """'0.7012 [0.61, 0.79]': the hold-out half's UF1 of one method in a :func:`scores_long` frame, or ''
    when there is none (synthetic or partial)."""
    hit = long[(long.subset == HOLDOUT) & (long.metric == "uf1")]
    if method is not None:
        hit = hit[hit.method == method]
    return format_score(hit.iloc[0], digits) if len(hit) else ""


# ----------------------------------------------------------------------------- peers
def published_peers() -> pd.DataFrame:
    """Published peer numbers (``am3f/published_peers.csv``): method, protocol, UF1 / UAR per subset
    (NaN = not published or not verified; an empty protocol reads "—"), source and note; one source per row."""
    with resources.files("am3f").joinpath("published_peers.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    frame = pd.DataFrame(rows)
    frame["protocol"] = frame["protocol"].replace("", EMPTY)  # none published: shown as every empty cell is
    for subset in PEER_SUBSETS:
        for m in ("uf1", "uar"):
            frame[f"{subset}_{m}"] = pd.to_numeric(frame[f"{subset}_{m}"].replace("", None))
    return frame


def peers_frame(peers: pd.DataFrame | None = None) -> pd.DataFrame:
    """Peers as a display table with a protocol and a source column ('—' = not published/verified)."""
    peers = published_peers() if peers is None else peers
    rows = []
    for p in peers.to_dict("records"):
        row = {"Method": p["method"], "Protocol": p["protocol"]}
        for subset in PEER_SUBSETS:
            title = DATASET_TITLES.get(subset, subset.title())
            for m in ("uf1", "uar"):
                row[f"{title} {METRIC_TITLES[m]}"] = format_mean_std(p[f"{subset}_{m}"])
        row["Source"] = p["source"] + (f" ({p['note']})" if p.get("note") else "")
        rows.append(row)
    return pd.DataFrame(rows)


def is_ours(run: RunResult) -> bool:
    """Whether a run is of AM3F-FlowNet: any model but a peer of the registry or a user's own (runs that
    name no model, or a toy one, read as before)."""
    from am3f.models.registry import ARCHITECTURES, is_user_model

    model = run.config.get("model", "am3f")
    return not (is_user_model(model) or (model in ARCHITECTURES and model != "am3f"))


def run_title(run: RunResult, label: str | None = None) -> str:
    """What a run is, for captions: 'AM3F-FlowNet (full)', 'STSTNet (ststnet)', a user's model by its own
    name ('my_net.py:build'); never AM3F-FlowNet for another model."""
    from am3f.models.registry import display_name

    label = run.label if label is None else label
    name = "AM3F-FlowNet" if is_ours(run) else display_name(run.config["model"])
    return name if label == name else f"{name} ({label})"


def results_caption(run: RunResult) -> str:
    """The caption of the results table (notebook 03, benchmarks/composite_evidence.py): written in one place
    so that the committed table regenerates byte for byte from its evidence."""
    return (f"{run_title(run)}, LOSO, mean ± std over {len(run.seeds)} seed(s) [95 % subject-bootstrap interval]"
            + ("" if run.complete else " -- PARTIAL RUN"))


def ablations_caption(runs: Mapping[str, RunResult | str | os.PathLike]) -> str:
    """The caption of the ablation table (notebook 04, benchmarks/composite_evidence.py)."""
    partial = not all(run.complete for run in as_runs(runs))
    return ("Ablations, composite LOSO scores; Δ vs full with 95 % paired subject-bootstrap interval and p"
            + (" -- PARTIAL RUNS" if partial else ""))


def method_name(run: RunResult, label: str) -> str:
    """A run's row name beside the published peers: 'AM3F-FlowNet, ours (full)'; any other model (a peer,
    a user's own) by its own name."""
    if is_ours(run):
        return f"AM3F-FlowNet, ours ({label})"
    return f"{run_title(run, label)}, in our harness"


def peers_table(ours=None, ststnet_run: str | os.PathLike | None = None,
                our_protocol: str = LOSO_FIXED) -> pd.DataFrame:
    """Our run(s) (UF1 / UAR mean ± std over seeds) above the published peers, same columns.

    ``ststnet_run``: a run directory of ``am3f evaluate-weights``; when given, its live numbers
    replace the stored ones in the 'published weights, our evaluation' row.
    """
    peers = published_peers()
    if ststnet_run is not None:
        live = score_table(load_run(ststnet_run).predictions)
        row = peers["method"].str.startswith("STSTNet (published weights")
        for subset in PEER_SUBSETS:
            for m in ("uf1", "uar"):
                values = live.loc[live.subset == subset, m]
                peers.loc[row, f"{subset}_{m}"] = seed_mean_std(values)[0] if len(values) else math.nan
        peers.loc[row, "source"] = peers.loc[row, "source"] + " -- recomputed now"
        peers.loc[row, "note"] = ""
    frames = []
    if ours is not None:
        mine = results_table(ours, metrics=("uf1", "uar"))
        mine["Method"] = [method_name(r, m) for r, m in zip(as_runs(ours), mine["Method"])]
        mine.insert(1, "Protocol", our_protocol)
        mine["Source"] = ["this repository" + (f" [{SYNTHETIC_TAG} DATA: not comparable]" if r.synthetic else "")
                          for r in as_runs(ours)]
        frames.append(mine.drop(columns=["Seeds"]))
    frames.append(peers_frame(peers))
    table = pd.concat(frames, ignore_index=True)
    cols = ["Method", "Protocol"] + [c for c in table.columns if c not in ("Method", "Protocol", "Source")] + ["Source"]
    return table[cols].fillna(EMPTY)


# ----------------------------------------------------------------------------- ablations
def ablation_table(runs: Mapping[str, RunResult | str | os.PathLike], reference: str | None = "full",
                   descriptions: Mapping[str, str] | None = None, digits: int = 4) -> pd.DataFrame:
    """One row per variant: composite UF1 / UAR / accuracy (mean ± std) and, against ``reference``,
    the paired Δ UF1 and Δ UAR with their 95 % subject-bootstrap interval and p (:mod:`am3f.results.stats`)
    and a verdict in words from the Δ UF1 interval ("no detectable effect" when it contains 0).

    ``runs`` maps a variant name to its run directory. Descriptions default to the model module's
    variant list when it is importable.
    """
    if descriptions is None:
        try:
            from am3f.models.registry import VARIANTS

            descriptions = {k: v[2] for k, v in VARIANTS.items()}
        except ImportError:  # pragma: no cover - model module not there
            descriptions = {}
    # read each run once, and name it by its key (a RunResult given as a value may carry another label)
    runs = {name: dataclasses.replace(run, label=name) for name, run in zip(runs.keys(), as_runs(runs))}
    long = scores_long(runs, metrics=METRICS)
    comp = long[long.subset == "composite"]
    deltas = None
    if reference is not None and reference in runs:
        deltas = paired_deltas(runs, reference).set_index(["variant", "metric"])
    rows = []
    for method, g in comp.groupby("method", sort=False):
        row = {"Variant": method, "What changes": descriptions.get(method, "")}
        for m in METRICS:
            hit = g[g.metric == m].iloc[0]
            row[f"Composite {METRIC_TITLES[m]}"] = format_score(hit, digits, interval=False)
        for m in ("uf1", "uar"):
            d = None if deltas is None or (method, m) not in deltas.index else deltas.loc[(method, m)]
            known = d is not None and not math.isnan(d["delta"])
            row[f"Δ {METRIC_TITLES[m]}"] = format_delta(d["delta"], (d["lo"], d["hi"]), digits) if known else EMPTY
            row[f"p ({METRIC_TITLES[m]})"] = f"{d['p']:.3f}" if known else EMPTY
        d = None if deltas is None or (method, "uf1") not in deltas.index else deltas.loc[(method, "uf1")]
        row["Verdict (Δ UF1)"] = "reference" if method == reference else d["verdict"] if d is not None else EMPTY
        if holdout_cell(long):  # real data: the clean half beside every row
            row[f"{HOLDOUT_TITLE} UF1"] = holdout_cell(long, method, digits) or EMPTY
        row["Seeds"] = int(g["n_seeds"].max())
        rows.append(row)
    return pd.DataFrame(rows)
