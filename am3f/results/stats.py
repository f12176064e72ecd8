"""How sure is a score: subject-bootstrap confidence intervals and paired comparisons of runs.

One definition, used by ``am3f score``, ``am3f compare``, the tables and the figures:

* **Resampling unit = subject** (LOSO holds out subjects, and a subject's samples are not
  independent). A bootstrap replicate draws, **within each source dataset**, as many subjects as
  that dataset has, with replacement (stratified: every replicate keeps 24 CASME II, 28 SAMM and
  16 SMIC-HS subjects of the composite set). A subject drawn twice counts twice.
* **Statistic** of a replicate: the MEGC2019 pooled score (:mod:`am3f.protocol.metrics`, absent-class rule
  included) of the resampled rows, per seed, then the **mean over the run's seeds**; every seed of a
  replicate uses the same resampled subjects. With every subject drawn once this is the reported
  mean over seeds.
* **Interval**: percentile bootstrap, B = 2000 replicates, 2.5th and 97.5th percentiles, bootstrap
  random seed fixed (:data:`BOOTSTRAP_SEED`), so a rerun prints the same interval. A per-dataset
  interval uses the same replicates restricted to that dataset, i.e. it resamples that dataset's
  subjects only. The interval says how much the score would move with another draw of subjects of
  the same kind; it does not include seed-to-seed training noise beyond the seeds averaged.
* **Paired comparison** of runs A and B on the same samples: Δ* = statistic(A) − statistic(B) on the
  *same* resampled subjects; Δ with the percentile interval of Δ*, and the two-sided bootstrap
  p-value ``p = min(1, 2 · min(1 + #{Δ* ≤ 0}, 1 + #{Δ* ≥ 0}) / (B + 1))`` (the smallest level at
  which the percentile interval would exclude 0, with the usual +1 correction, so p ≥ 2 / (B + 1)).
  A run compared with itself gives Δ* ≡ 0 and p = 1. The two runs may have different seeds: each
  run's statistic is the mean over its own seeds.

Speed: per-subject confusion matrices (seeds × subjects × C × C) are pooled for all replicates at
once by a tensor product with the replicate multiplicities (B × subjects), and the metrics are
computed from the stacked confusion matrices (:func:`am3f.protocol.metrics.scores_from_confusions`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from am3f.data.dataset import CLASS_NAMES, DATASET_TITLES
from am3f.errors import AM3FError
from am3f.protocol.metrics import format_interval, scores_from_confusions, subset_key
from am3f.protocol.run_folder import RunResult, as_runs

HOLDOUT = "hold-out"  # the subset of the subjects outside the development half (am3f.protocol.folds.development_half)
HOLDOUT_TITLE = "Hold-out"
MIN_SUBJECTS = 10  # fewer resampled subjects than this: intervals and p-values are flagged as unreliable
BOOTSTRAP_REPLICATES = 2000
BOOTSTRAP_SEED = 20190442  # fixed: the same run always gets the same interval
LEVEL = 0.95
METRICS: tuple[str, ...] = ("uf1", "uar", "accuracy")


@dataclass(frozen=True)
class SubjectConfusions:
    """Per-subject confusion counts of a run: ``counts[k, i]`` = seed k, subject i (rows = truth)."""

    keys: pd.DataFrame  # one row per subject: dataset, subject (sorted: dataset order, then subject)
    counts: np.ndarray  # (n_seeds, n_subjects, C, C), int64
    seeds: tuple[int, ...]
    holdout: tuple[str, ...] = ()  # subjects of the hold-out half (subset HOLDOUT); empty: no such subset

    @property
    def datasets(self) -> np.ndarray:
        return self.keys["dataset"].to_numpy()

    def subsets(self) -> list[str]:
        """'composite', then each dataset when there are several (as :func:`am3f.protocol.metrics.score_table`),
        then the hold-out half when it is known."""
        datasets = sorted(set(self.datasets), key=subset_key)
        return ["composite"] + (datasets if len(datasets) > 1 else []) + ([HOLDOUT] if self.holdout else [])

    def mask(self, subset: str) -> np.ndarray:
        if subset == HOLDOUT:
            return self.keys["subject"].isin(self.holdout).to_numpy()
        return np.ones(len(self.keys), bool) if subset == "composite" else self.datasets == subset


def holdout_subjects(predictions: pd.DataFrame, complete: bool = True) -> tuple[str, ...]:
    """The subjects of a run's predictions outside the development half (:func:`am3f.protocol.folds.development_half`):
    the half that never informed a decision, whose score is the clean one. Known only for a complete run
    (the halves are dealt over all of a dataset's subjects); ``()`` otherwise."""
    from am3f.protocol.folds import development_half

    if not complete or predictions.empty:
        return ()
    pairs = predictions[["dataset", "subject"]].astype(str).drop_duplicates()
    dev = set(development_half(pairs["dataset"], pairs["subject"]))
    return tuple(sorted(set(pairs["subject"]) - dev))


def small_sample_note(n_subjects: int) -> str:
    """A warning for intervals and p-values resampled from fewer than :data:`MIN_SUBJECTS` subjects
    ('' otherwise): with so few subjects the bootstrap cannot see how much another draw would move."""
    if n_subjects >= MIN_SUBJECTS:
        return ""
    return (f"only {n_subjects} subject(s): the 95 % interval and p are not reliable with fewer than "
            f"{MIN_SUBJECTS} subjects")


def subject_keys(predictions: pd.DataFrame) -> pd.DataFrame:
    """The run's subjects as (dataset, subject) rows in a fixed order: datasets as in tables, then subject."""
    keys = predictions[["dataset", "subject"]].astype(str).drop_duplicates()
    order = sorted(zip(keys["dataset"], keys["subject"]), key=lambda k: (subset_key(k[0]), k[1]))
    return pd.DataFrame(order, columns=["dataset", "subject"])


def subject_confusions(predictions: pd.DataFrame, keys: pd.DataFrame | None = None,
                       n_classes: int = len(CLASS_NAMES), holdout: tuple[str, ...] = ()) -> SubjectConfusions:
    """Confusion counts per (seed, subject); ``keys`` fixes the subject order (e.g. another run's);
    ``holdout``: the hold-out half's subjects (:func:`holdout_subjects`), scored as subset :data:`HOLDOUT`."""
    keys = subject_keys(predictions) if keys is None else keys
    index = pd.MultiIndex.from_frame(keys)
    where = index.get_indexer(pd.MultiIndex.from_frame(predictions[["dataset", "subject"]].astype(str)))
    if (where < 0).any():
        raise AM3FError("predictions hold subjects that are not in the given subject list")
    seeds = tuple(sorted(int(s) for s in predictions["seed"].unique()))
    seed_idx = np.searchsorted(seeds, predictions["seed"].to_numpy())
    counts = np.zeros((len(seeds), len(keys), n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (seed_idx, where, predictions["label"].to_numpy(int), predictions["pred"].to_numpy(int)), 1)
    return SubjectConfusions(keys=keys.reset_index(drop=True), counts=counts, seeds=seeds,
                             holdout=tuple(str(s) for s in holdout))


def bootstrap_weights(datasets: np.ndarray, replicates: int = BOOTSTRAP_REPLICATES,
                      seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(replicates, n_subjects) multiplicities: per replicate, each dataset's subjects drawn with
    replacement, as many as it has (so each row sums to the dataset's subject count within it)."""
    datasets = np.asarray(datasets)
    rng = np.random.default_rng(seed)
    weights = np.zeros((replicates, len(datasets)), dtype=np.int64)
    for d in sorted(set(datasets), key=subset_key):
        cols = np.flatnonzero(datasets == d)
        n = len(cols)
        draws = rng.integers(0, n, size=(replicates, n)) + n * np.arange(replicates)[:, None]
        weights[:, cols] = np.bincount(draws.ravel(), minlength=replicates * n).reshape(replicates, n)
    return weights


def replicate_scores(sc: SubjectConfusions, weights: np.ndarray, subset: str = "composite",
                     metrics: tuple[str, ...] = METRICS) -> dict[str, np.ndarray]:
    """{metric: (n_replicates,)} the run's statistic (mean over seeds of the pooled score) per replicate;
    a weights row of ones gives the reported score."""
    return masked_scores(sc, weights, sc.mask(subset), metrics)


def masked_scores(sc: SubjectConfusions, weights: np.ndarray, mask: np.ndarray,
                  metrics: tuple[str, ...] = METRICS) -> dict[str, np.ndarray]:
    """:func:`replicate_scores` of the subjects selected by a boolean ``mask``."""
    # pooled[b, k] = sum_i weights[b, i] * counts[k, i]: all replicates' pooled confusion matrices at once
    pooled = np.tensordot(weights[:, mask].astype(float), sc.counts[:, mask].astype(float), axes=([1], [1]))
    scores = scores_from_confusions(pooled)  # each (n_replicates, n_seeds)
    # a seed with nothing to score here (a partial run's missing folds) is left out, as in summarize()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {m: np.nanmean(scores[m], axis=1) for m in metrics}


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    lo, hi = np.nanpercentile(values, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def bootstrap_p(deltas: np.ndarray) -> float:
    """Two-sided bootstrap p-value of 'no difference' (see the module docstring)."""
    deltas = deltas[~np.isnan(deltas)]
    b = len(deltas)
    tail = min(int((deltas <= 0).sum()), int((deltas >= 0).sum()))
    return float(min(1.0, 2 * (1 + tail) / (b + 1)))


def bootstrap_info(replicates: int = BOOTSTRAP_REPLICATES, seed: int = BOOTSTRAP_SEED) -> dict:
    """How the intervals were made (stored next to them)."""
    return {"method": "percentile bootstrap over subjects, stratified by source dataset",
            "replicates": replicates, "level": LEVEL, "seed": seed,
            "statistic": "mean over seeds of the pooled MEGC2019 score of the resampled subjects"}


# ----------------------------------------------------------------------------- one run
def subset_intervals(predictions: pd.DataFrame, replicates: int = BOOTSTRAP_REPLICATES, seed: int = BOOTSTRAP_SEED,
                     metrics: tuple[str, ...] = METRICS, holdout: tuple[str, ...] = ()) -> dict[str, dict[str, dict]]:
    """{subset: {metric: {"estimate": mean over seeds, "ci95": (lo, hi)}}}, composite, per dataset and,
    given ``holdout`` subjects, the hold-out half (the same replicates restricted to its subjects)."""
    sc = subject_confusions(predictions, holdout=holdout)
    weights = bootstrap_weights(sc.datasets, replicates, seed)
    ones = np.ones((1, len(sc.keys)), dtype=np.int64)
    out = {}
    for subset in sc.subsets():
        boot, point = replicate_scores(sc, weights, subset, metrics), replicate_scores(sc, ones, subset, metrics)
        out[subset] = {m: {"estimate": float(point[m][0]), "ci95": percentile_interval(boot[m]),
                           "n_subjects": int(sc.mask(subset).sum())} for m in metrics}
    return out


def add_intervals(summary: dict, predictions: pd.DataFrame, replicates: int = BOOTSTRAP_REPLICATES,
                  seed: int = BOOTSTRAP_SEED, holdout: tuple[str, ...] = ()) -> dict:
    """Put ``ci95 = [lo, hi]`` next to ``mean`` and ``std`` of UF1 / UAR / accuracy in a
    :func:`am3f.protocol.metrics.summarize` result (in place; also returned); a subset of fewer than
    :data:`MIN_SUBJECTS` subjects gets a ``warning``."""
    intervals = subset_intervals(predictions, replicates, seed, holdout=holdout)
    for subset, entry in summary["subsets"].items():
        for m, iv in intervals.get(subset, {}).items():
            entry[m]["ci95"] = [round(v, 6) for v in iv["ci95"]]
        if subset in intervals:
            entry["n_subjects"] = intervals[subset]["uf1"]["n_subjects"]
            if small_sample_note(entry["n_subjects"]):
                entry["warning"] = small_sample_note(entry["n_subjects"])
    summary["bootstrap"] = bootstrap_info(replicates, seed)
    return summary


def half_gap(predictions: pd.DataFrame, holdout: tuple[str, ...], metric: str = "uf1",
             replicates: int = BOOTSTRAP_REPLICATES, seed: int = BOOTSTRAP_SEED) -> dict:
    """The optimism of the development half: score on the development half (A, whose subjects chose the
    design and the declared schedule) minus score on the hold-out half (B), with the 95 % interval of that
    difference over the same subject-bootstrap replicates (the halves hold different subjects, so it is
    not a paired Δ). ``{"a", "b", "delta", "ci95", "p"}``."""
    sc = subject_confusions(predictions, holdout=holdout)
    hold = sc.mask(HOLDOUT)
    weights = bootstrap_weights(sc.datasets, replicates, seed)
    ones = np.ones((1, len(sc.keys)), dtype=np.int64)
    a, b = masked_scores(sc, ones, ~hold, (metric,))[metric][0], masked_scores(sc, ones, hold, (metric,))[metric][0]
    deltas = masked_scores(sc, weights, ~hold, (metric,))[metric] - masked_scores(sc, weights, hold, (metric,))[metric]
    return {"a": float(a), "b": float(b), "delta": float(a - b), "ci95": percentile_interval(deltas),
            "p": bootstrap_p(deltas)}


# ----------------------------------------------------------------------------- two runs
def check_same_samples(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str] = ("A", "B")) -> None:
    """Raise a one-line :class:`AM3FError` unless both runs hold the same samples with the same
    labels, datasets and subjects."""
    cols = ["label", "dataset", "subject"]
    ta = a.drop_duplicates("sample_id").set_index("sample_id")[cols].astype(str)
    tb = b.drop_duplicates("sample_id").set_index("sample_id")[cols].astype(str)
    only_a, only_b = sorted(set(ta.index) - set(tb.index)), sorted(set(tb.index) - set(ta.index))
    if only_a or only_b:
        parts = [f"{len(ids)} sample(s) only in {n}" + (f" (e.g. {ids[0]})" if ids else "")
                 for ids, n in ((only_a, names[0]), (only_b, names[1])) if ids]
        raise AM3FError(f"{names[0]} and {names[1]} are not on the same samples: {'; '.join(parts)}")
    tb = tb.loc[ta.index]
    for col in cols:
        differ = ta.index[ta[col] != tb[col]]
        if len(differ):
            s = differ[0]
            raise AM3FError(f"{names[0]} and {names[1]} disagree on the {col} of {len(differ)} sample(s) "
                            f"(e.g. {s}: {ta.at[s, col]} vs {tb.at[s, col]})")


def compare_predictions(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str] = ("A", "B"),
                        replicates: int = BOOTSTRAP_REPLICATES, seed: int = BOOTSTRAP_SEED,
                        metrics: tuple[str, ...] = METRICS, holdout: tuple[str, ...] = ()) -> dict:
    """Paired comparison A − B (module docstring): composite keys at the top level
    (``delta_uf1``, ``delta_uf1_ci95``, ``p_uf1``, ``uf1_a``, ``uf1_b``, ... , ``n_subjects``) and the
    same keys per subset under ``subsets`` (the hold-out half too, given its ``holdout`` subjects); a
    subset of fewer than :data:`MIN_SUBJECTS` subjects gets a ``warning``."""
    check_same_samples(a, b, names)
    keys = subject_keys(a)
    sa, sb = subject_confusions(a, keys, holdout=holdout), subject_confusions(b, keys, holdout=holdout)
    weights = bootstrap_weights(sa.datasets, replicates, seed)
    ones = np.ones((1, len(keys)), dtype=np.int64)
    subsets = {}
    for subset in sa.subsets():
        boot_a, boot_b = replicate_scores(sa, weights, subset, metrics), replicate_scores(sb, weights, subset, metrics)
        pt_a, pt_b = replicate_scores(sa, ones, subset, metrics), replicate_scores(sb, ones, subset, metrics)
        entry: dict = {"title": _title(subset), "n_subjects": int(sa.mask(subset).sum())}
        if small_sample_note(entry["n_subjects"]):
            entry["warning"] = small_sample_note(entry["n_subjects"])
        for m in metrics:
            deltas = boot_a[m] - boot_b[m]
            entry.update({f"{m}_a": float(pt_a[m][0]), f"{m}_b": float(pt_b[m][0]),
                          f"delta_{m}": float(pt_a[m][0] - pt_b[m][0]),
                          f"delta_{m}_ci95": list(percentile_interval(deltas)), f"p_{m}": bootstrap_p(deltas)})
        subsets[subset] = entry
    out = {k: v for k, v in subsets["composite"].items() if k != "title"}
    out.update({"n_samples": int(a["sample_id"].nunique()), "seeds_a": list(sa.seeds), "seeds_b": list(sb.seeds),
                "bootstrap": bootstrap_info(replicates, seed), "subsets": subsets})
    return out


def compare_runs(run_a: RunResult | str | os.PathLike, run_b: RunResult | str | os.PathLike, **kwargs) -> dict:
    """:func:`compare_predictions` of two run directories, with their paths and labels; the hold-out
    half is compared too when both runs are complete."""
    ra, rb = as_runs(run_a)[0], as_runs(run_b)[0]
    names = (str(ra.path), str(rb.path))
    out = {"run_a": names[0], "run_b": names[1], "label_a": ra.label, "label_b": rb.label,
           "synthetic": ra.synthetic or rb.synthetic, "complete": ra.complete and rb.complete}
    kwargs.setdefault("holdout", holdout_subjects(ra.predictions, out["complete"]))
    out.update(compare_predictions(ra.predictions, rb.predictions, names=names, **kwargs))
    return out


def _title(subset: str) -> str:
    return HOLDOUT_TITLE if subset == HOLDOUT else DATASET_TITLES.get(subset, subset)


def verdict(interval: tuple[float, float], better: str = "better", worse: str = "worse") -> str:
    """Plain words for a Δ interval: no detectable effect when it contains 0."""
    lo, hi = interval
    if np.isnan(lo) or np.isnan(hi):
        return "—"
    return worse if hi < 0 else better if lo > 0 else "no detectable effect"


def format_delta(delta: float, interval: tuple[float, float], digits: int = 4) -> str:
    """'+0.0123 [-0.031, 0.052]'."""
    return f"{delta:+.{digits}f} {format_interval(interval)}"


def format_comparison(result: dict) -> str:
    """What ``am3f compare`` prints."""
    b = result["bootstrap"]
    lines = [f"A = {result.get('run_a', 'A')} (seeds {' '.join(map(str, result['seeds_a']))})",
             f"B = {result.get('run_b', 'B')} (seeds {' '.join(map(str, result['seeds_b']))})",
             f"{result['n_samples']} samples, {result['n_subjects']} subjects; Δ = A − B with its 95 % paired "
             f"subject-bootstrap interval ({b['replicates']} replicates, stratified by dataset) and two-sided p"]
    head = f"{'subset':<12}{'subj.':>6}" + "".join(
        f"   {t + ' A':>7} {t + ' B':>7}  {'Δ ' + t:<25}{'p':>6}" for t in ("UF1", "UAR"))
    lines += [head, "-" * len(head)]
    for e in result["subsets"].values():
        lines.append(f"{e['title']:<12}{e['n_subjects']:>6}" + "".join(
            f"   {e[f'{m}_a']:>7.4f} {e[f'{m}_b']:>7.4f}  "
            f"{format_delta(e[f'delta_{m}'], e[f'delta_{m}_ci95']):<25}{e[f'p_{m}']:>6.3f}" for m in ("uf1", "uar")))
    comp = result["subsets"]["composite"]
    lines.append(f"composite UF1: {verdict(comp['delta_uf1_ci95'], 'A better', 'A worse')}"
                 f"; UAR: {verdict(comp['delta_uar_ci95'], 'A better', 'A worse')} (95 % interval of Δ vs 0)")
    if HOLDOUT in result["subsets"]:
        lines.append(f"{HOLDOUT_TITLE}: the {result['subsets'][HOLDOUT]['n_subjects']} subjects outside the "
                     "development half, which never informed a design or schedule decision: the clean comparison")
    lines += [f"warning: {e['title']}: {e['warning']}" for e in result["subsets"].values() if e.get("warning")]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- ablations
def paired_deltas(runs: Mapping[str, RunResult | str | os.PathLike], reference: str = "full",
                  metrics: tuple[str, ...] = ("uf1", "uar"), replicates: int = BOOTSTRAP_REPLICATES,
                  seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """One row per (variant, metric): composite Δ = variant − ``reference`` with interval, p and
    verdict. A variant on other samples than the reference gets NaN and says so."""
    loaded = dict(zip(runs.keys(), as_runs(runs)))
    if reference not in loaded:
        raise AM3FError(f"no reference run {reference!r} among {sorted(loaded)}")
    ref = loaded[reference]
    rows = []
    for name, run in loaded.items():
        if name == reference:
            continue
        try:
            res = compare_predictions(run.predictions, ref.predictions, names=(name, reference),
                                      replicates=replicates, seed=seed, metrics=metrics)
        except AM3FError as exc:
            rows += [{"variant": name, "metric": m, "delta": np.nan, "lo": np.nan, "hi": np.nan, "p": np.nan,
                      "verdict": f"not paired: {exc}"} for m in metrics]
            continue
        for m in metrics:
            lo, hi = res[f"delta_{m}_ci95"]
            rows.append({"variant": name, "metric": m, "delta": res[f"delta_{m}"], "lo": lo, "hi": hi,
                         "p": res[f"p_{m}"], "verdict": verdict((lo, hi), f"better than {reference}",
                                                                f"worse than {reference}")})
    return pd.DataFrame(rows, columns=["variant", "metric", "delta", "lo", "hi", "p", "verdict"])
