"""Subject-bootstrap intervals and paired comparisons (am3f.results.stats, `am3f score`, `am3f compare`),
checked against an independent, deliberately simple implementation written here."""

import json
import time

import numpy as np
import pandas as pd
import pytest

from am3f.app.cli import main
from am3f.protocol.metrics import megc_scores, scores_from_confusion, scores_from_confusions, summarize
from am3f.results import stats

CLASSES = ("negative", "positive", "surprise")


# ----------------------------------------------------------------------------- building runs by hand
def write_run(path, predictions: pd.DataFrame, synthetic: bool = False):
    """A run directory as `am3f loso` writes it (config.json + one CSV/JSON per fold) from a predictions
    frame with columns sample_id, dataset, subject, label, pred, seed."""
    path.mkdir(parents=True)
    (path / "folds").mkdir()
    subjects = sorted(predictions["subject"].unique())
    config = {"model": "toy", "variant": path.name,
              "dataset": {"synthetic": synthetic, "n_subjects": len(subjects), "n_samples": 0}}
    (path / "config.json").write_text(json.dumps(config))
    for seed, by_seed in predictions.groupby("seed"):
        for fold, subject in enumerate(subjects):
            rows = by_seed[by_seed.subject == subject].copy()
            if rows.empty:
                continue
            rows["fold"] = fold
            for c, name in enumerate(CLASSES):
                rows[f"score_{name}"] = (rows["pred"] == c).astype(float)
            stem = path / "folds" / f"s{seed}_f{fold:03d}"
            rows.to_csv(stem.with_suffix(".csv"), index=False)
            stem.with_suffix(".json").write_text(json.dumps(
                {"seed": int(seed), "fold": fold, "subject": subject, "n_train": 0, "n_test": len(rows),
                 "wall_s": 0.0, "device": "cpu"}))
    return path


def toy_predictions(n_per_dataset=(("casme2", 10), ("samm", 8), ("smic", 6)), seeds=(0, 1), accuracy=0.7,
                    seed=0) -> pd.DataFrame:
    """A realistic small run: three datasets, 2-9 samples per subject, imbalanced classes, ~70 % correct."""
    rng = np.random.default_rng(seed)
    samples = []
    for dataset, n_subjects in n_per_dataset:
        for s in range(n_subjects):
            subject = f"{dataset[:2]}{s:02d}"
            for i in range(int(rng.integers(2, 10))):
                samples.append((f"{subject}_{i}", dataset, subject, int(rng.choice(3, p=[0.55, 0.25, 0.2]))))
    rows = []
    for k in seeds:
        for sample_id, dataset, subject, label in samples:
            pred = label if rng.random() < accuracy else int(rng.integers(0, 3))
            rows.append({"sample_id": sample_id, "dataset": dataset, "subject": subject, "label": label,
                         "pred": pred, "seed": k})
    return pd.DataFrame(rows)


def perturbed(predictions: pd.DataFrame, seed: int = 7, worse=0.12, better=0.08) -> pd.DataFrame:
    """Another run on the same samples: some predictions made wrong, some made right."""
    rng = np.random.default_rng(seed)
    out = predictions.copy()
    u = rng.random(len(out))
    wrong = (out["label"] + rng.integers(1, 3, len(out))) % 3
    out["pred"] = np.where(u < worse, wrong, np.where(u > 1 - better, out["label"], out["pred"]))
    return out


# ----------------------------------------------------------------------------- the independent implementation
def simple_scores(y: np.ndarray, p: np.ndarray) -> dict:
    """UF1 / UAR / accuracy by the book, over the classes present in y."""
    f1s, recalls = [], []
    for c in sorted(set(y.tolist())):
        tp = int(((y == c) & (p == c)).sum())
        fp = int(((y != c) & (p == c)).sum())
        fn = int(((y == c) & (p != c)).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn))
        recalls.append(tp / (tp + fn))
    return {"uf1": float(np.mean(f1s)), "uar": float(np.mean(recalls)), "accuracy": float((y == p).mean())}


def simple_bootstrap(runs: list[pd.DataFrame], replicates: int = 4000, seed: int = 12345) -> list[list[dict]]:
    """Per replicate and run: {subset: {metric: mean over that run's seeds}}. A loop over replicates,
    with its own draws: pick subjects per dataset, gather their rows, score each seed and average."""
    rng = np.random.default_rng(seed)
    subjects = runs[0][["dataset", "subject"]].drop_duplicates()
    by_dataset = {d: sorted(g["subject"]) for d, g in subjects.groupby("dataset")}
    # per run and seed: label / pred arrays and the rows of each (dataset, subject)
    tables = [[(g.label.to_numpy(), g.pred.to_numpy(), g.reset_index(drop=True).groupby(["dataset", "subject"]).indices)
               for _, g in run.groupby("seed")] for run in runs]
    out = []
    for _ in range(replicates):
        drawn = {d: rng.choice(subs, size=len(subs), replace=True) for d, subs in by_dataset.items()}
        per_run = []
        for per_seed in tables:
            scores = {}
            for subset in ["composite"] + sorted(by_dataset) + ["hold-out"]:
                keys = [(d, s) for d, subs in drawn.items() if subset in ("composite", d) for s in subs]
                if subset == "hold-out":  # the 2nd, 4th, ... subject of each dataset: outside the development half
                    keys = [(d, s) for d, subs in drawn.items() for s in subs if s in by_dataset[d][1::2]]
                seed_scores = []
                for y, p, rows in per_seed:
                    idx = np.concatenate([rows[k] for k in keys])
                    seed_scores.append(simple_scores(y[idx], p[idx]))
                scores[subset] = {m: float(np.mean([s[m] for s in seed_scores])) for m in stats.METRICS}
            per_run.append(scores)
        out.append(per_run)
    return out


def quantiles(values) -> list[float]:
    return list(np.percentile(values, [2.5, 97.5]))


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def realistic_runs(request, tmp_path_factory):
    """(run A, run B) on the same samples: the real STSTNet-published run and a perturbed copy when the
    shared data is there, else a toy three-dataset run and a perturbed copy."""
    tmp = tmp_path_factory.mktemp("realistic")
    try:
        shared = request.getfixturevalue("shared_data")
    except pytest.skip.Exception:
        shared = None
    if shared is not None:
        a = tmp / "ststnet-pub"
        assert main(["evaluate-weights", "--weights", str(shared / "ststnet-reference" / "weights"),
                     "--data", str(shared / "megc2019-composite"), "--out", str(a), "--device", "cpu"]) == 0
        preds = pd.read_csv(a / "predictions.csv", dtype={"subject": str})
    else:
        preds = toy_predictions()
        a = write_run(tmp / "toy-a", preds)
    cols = ["sample_id", "dataset", "subject", "label", "pred", "seed"]
    b = write_run(tmp / "perturbed", perturbed(preds[cols]))
    return a, b


# ----------------------------------------------------------------------------- metrics from confusion stacks
def test_vectorised_scores_equal_the_scalar_ones_including_absent_classes():
    rng = np.random.default_rng(0)
    cms = rng.integers(0, 4, size=(50, 3, 3))
    cms[::3, 2, :] = 0  # class absent from the ground truth
    cms[::7] = 0  # nothing at all
    batch = scores_from_confusions(cms)
    for i, cm in enumerate(cms):
        one = scores_from_confusion(cm)
        for m in ("uf1", "uar", "accuracy", "macro_precision"):
            assert (np.isnan(one[m]) and np.isnan(batch[m][i])) or one[m] == batch[m][i]


# ----------------------------------------------------------------------------- one run
def test_point_estimate_is_the_reported_mean_over_seeds_and_inside_the_interval():
    preds = toy_predictions()
    summary = stats.add_intervals(summarize(preds), preds)
    intervals = stats.subset_intervals(preds)
    assert set(summary["subsets"]) == {"composite", "casme2", "samm", "smic"}
    for subset, entry in summary["subsets"].items():
        for m in stats.METRICS:
            lo, hi = entry[m]["ci95"]
            assert intervals[subset][m]["estimate"] == pytest.approx(entry[m]["mean"], abs=1e-12)
            assert lo <= entry[m]["mean"] <= hi and hi - lo > 0
    assert summary["bootstrap"]["replicates"] == 2000


def test_stratification_keeps_each_datasets_subject_count():
    datasets = np.array(["casme2"] * 24 + ["samm"] * 28 + ["smic"] * 16)
    w = stats.bootstrap_weights(datasets, replicates=500)
    assert w.shape == (500, 68) and w.min() >= 0
    for d, n in (("casme2", 24), ("samm", 28), ("smic", 16)):
        assert (w[:, datasets == d].sum(axis=1) == n).all()
    assert (w.max(axis=1) >= 2).all()  # with replacement: some subject drawn twice in every replicate


def test_same_seed_same_interval_other_seed_other_interval():
    preds = toy_predictions()
    a, b = stats.subset_intervals(preds), stats.subset_intervals(preds)
    assert a == b
    c = stats.subset_intervals(preds, seed=1)
    assert c["composite"]["uf1"]["ci95"] != a["composite"]["uf1"]["ci95"]


def test_a_statistic_is_the_mean_over_seeds_on_the_same_resampled_subjects():
    preds = toy_predictions()
    sc = stats.subject_confusions(preds)
    w = stats.bootstrap_weights(sc.datasets, replicates=5)
    boot = stats.replicate_scores(sc, w, "samm")
    keys = list(zip(sc.keys.dataset, sc.keys.subject))
    for b in range(5):
        drawn = [k for k, n in zip(keys, w[b]) for _ in range(n) if k[0] == "samm"]
        rows = pd.concat([preds[(preds.dataset == d) & (preds.subject == s)] for d, s in drawn])
        per_seed = [megc_scores(g.label, g.pred)["uf1"] for _, g in rows.groupby("seed")]
        assert boot["uf1"][b] == pytest.approx(np.mean(per_seed), abs=1e-12)


def test_bootstrap_of_a_68_subject_5_seed_run_is_fast():
    preds = toy_predictions((("casme2", 24), ("samm", 28), ("smic", 16)), seeds=range(5))
    stats.subset_intervals(preds)  # warm up
    t0 = time.perf_counter()
    stats.subset_intervals(preds)
    stats.compare_predictions(preds, perturbed(preds))
    assert time.perf_counter() - t0 < 1.0


# ----------------------------------------------------------------------------- two runs
def test_a_run_compared_with_itself():
    preds = toy_predictions()
    res = stats.compare_predictions(preds, preds)
    for subset in res["subsets"].values():
        for m in ("uf1", "uar"):
            assert subset[f"delta_{m}"] == 0 and subset[f"delta_{m}_ci95"] == [0.0, 0.0] and subset[f"p_{m}"] == 1.0
    assert res["n_subjects"] == 24


def test_better_on_every_subject_gives_a_small_p():
    rows = []
    for d, n in (("casme2", 8), ("samm", 8)):
        for s in range(n):
            for i, label in enumerate([0, 0, 1, 2]):
                rows.append({"sample_id": f"{d}{s}_{i}", "dataset": d, "subject": f"{d}{s}", "label": label,
                             "pred": label, "seed": 0})
    a = pd.DataFrame(rows)
    b = a.copy()
    b.loc[b.sample_id.str.endswith("_1"), "pred"] = 1  # one mistake per subject
    res = stats.compare_predictions(a, b)
    assert res["delta_uf1"] > 0 and res["delta_uf1_ci95"][0] > 0
    assert res["p_uf1"] < 0.05 and res["p_uar"] < 0.05
    assert res["p_uf1"] == pytest.approx(2 / 2001)  # no replicate with Δ* <= 0
    flipped = stats.compare_predictions(b, a)
    assert flipped["delta_uf1"] == -res["delta_uf1"] and flipped["p_uf1"] == res["p_uf1"]


def test_runs_with_different_seeds_compare_as_their_means():
    preds = toy_predictions(seeds=(0, 1, 2))
    one_seed = preds[preds.seed == 0]
    res = stats.compare_predictions(preds, one_seed)
    assert res["seeds_a"] == [0, 1, 2] and res["seeds_b"] == [0]
    mean_a = np.mean([megc_scores(g.label, g.pred)["uf1"] for _, g in preds.groupby("seed")])
    assert res["delta_uf1"] == pytest.approx(mean_a - megc_scores(one_seed.label, one_seed.pred)["uf1"])


@pytest.mark.parametrize("change, expect", [("drop", "1 sample(s) only in"), ("label", "disagree on the label"),
                                             ("subject", "disagree on the subject")])
def test_runs_on_different_samples_are_refused_in_one_line(change, expect, tmp_path, capsys):
    preds = toy_predictions(seeds=(0,))
    other = preds.copy()
    if change == "drop":
        other = other.iloc[1:]
    elif change == "label":
        other.loc[3, "label"] = (other.loc[3, "label"] + 1) % 3
    else:
        other.loc[3, "subject"] = other.loc[0, "subject"] if other.loc[3, "subject"] != other.loc[0, "subject"] \
            else other.loc[len(other) - 1, "subject"]
    a, b = write_run(tmp_path / "a", preds), write_run(tmp_path / "b", other)
    code = main(["compare", str(a), str(b)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("am3f compare: error:") and expect in lines[0] and str(a) in lines[0]


# ----------------------------------------------------------------------------- command line
def test_score_prints_and_stores_intervals(tmp_path, capsys):
    run = write_run(tmp_path / "run", toy_predictions())
    assert main(["score", str(run)]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    comp = metrics["subsets"]["composite"]
    lo, hi = comp["uf1"]["ci95"]
    assert f"{comp['uf1']['mean']:.4f} ± {comp['uf1']['std']:.4f} [{lo:.3f}, {hi:.3f}]" in out
    for subset in ("composite", "casme2", "samm", "smic"):
        assert {"mean", "std", "ci95"} <= set(metrics["subsets"][subset]["uar"])
        assert len(metrics["subsets"][subset]["accuracy"]["ci95"]) == 2
    assert metrics["subsets"]["samm"]["n_subjects"] == 8


def test_compare_prints_a_table_and_json(tmp_path, capsys):
    preds = toy_predictions()
    a, b = write_run(tmp_path / "a", preds), write_run(tmp_path / "b", perturbed(preds))
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "Δ UF1" in out and "SAMM" in out
    assert main(["compare", str(a), str(b), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert {"delta_uf1", "delta_uf1_ci95", "delta_uar", "delta_uar_ci95", "p_uf1", "p_uar", "n_subjects"} <= set(res)
    assert set(res["subsets"]) == {"composite", "casme2", "samm", "smic", "hold-out"} and res["n_subjects"] == 24
    assert res["subsets"]["hold-out"]["n_subjects"] == 12  # every second subject of each dataset is development
    assert f"{res['delta_uf1']:+.4f}" in out


def test_score_and_compare_agree_with_a_simple_independent_bootstrap(realistic_runs, capsys):
    """metrics.json intervals and `compare --json` within 0.015 of a loop-over-replicates bootstrap with its
    own random draws (Monte Carlo error of both at these B is a few thousandths)."""
    a, b = realistic_runs
    assert main(["score", str(a)]) == 0
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    metrics = json.loads((a / "metrics.json").read_text())
    pa, pb = (pd.read_csv(p / "predictions.csv", dtype={"subject": str}) for p in (a, b))
    reps = simple_bootstrap([pa, pb])
    for subset, entry in metrics["subsets"].items():
        for m in stats.METRICS:
            ours = quantiles([r[0][subset][m] for r in reps])
            assert entry[m]["ci95"] == pytest.approx(ours, abs=0.015), (subset, m)
            deltas = np.array([r[0][subset][m] - r[1][subset][m] for r in reps])
            cmp = res["subsets"][subset]
            assert cmp[f"delta_{m}_ci95"] == pytest.approx(quantiles(deltas), abs=0.015), (subset, m)
            p = min(1.0, 2 * (1 + min((deltas <= 0).sum(), (deltas >= 0).sum())) / (len(deltas) + 1))
            # p is a tail frequency: its Monte Carlo error is larger than a quantile's, up to ~0.03 here
            assert cmp[f"p_{m}"] == pytest.approx(p, abs=0.06), (subset, m)
    assert res["delta_uf1"] == pytest.approx(res["uf1_a"] - res["uf1_b"])
    assert res["n_subjects"] == pa[["dataset", "subject"]].drop_duplicates().shape[0]


def test_verdict_in_words():
    assert stats.verdict((-0.03, 0.02)) == "no detectable effect"
    assert stats.verdict((0.0, 0.02)) == "no detectable effect"  # an interval touching 0 contains it
    assert stats.verdict((-0.05, -0.01), worse="worse than full") == "worse than full"
    assert stats.verdict((0.01, 0.05)) == "better"
    assert stats.format_delta(-0.01234, (-0.0311, 0.0522)) == "-0.0123 [-0.031, 0.052]"


# ----------------------------------------------------------------------------- figures
def test_forest_plot_and_interval_figure_are_labelled_and_saved(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from am3f.results import plots, writers

    preds = toy_predictions()
    runs = {name: write_run(tmp_path / name, p, synthetic=True)
            for name, p in (("full", preds), ("no_msff", perturbed(preds)), ("u", perturbed(preds, seed=3)))}
    deltas = stats.paired_deltas(runs)
    assert list(deltas.variant) == ["no_msff", "no_msff", "u", "u"] and deltas.p.between(0, 1).all()
    fig = plots.forest_plot(deltas, synthetic=True)
    assert "SYNTHETIC" in fig._suptitle.get_text() and len(fig.axes) == 2
    paths = writers.save_figure(fig, tmp_path / "figs", "ablations_forest", synthetic=True)
    assert [p.name for p in paths] == ["ablations_forest_synthetic.png", "ablations_forest_synthetic.pdf"]
    fig = plots.interval_vs_peers(runs["full"])
    text = fig.axes[0].get_title()
    assert "SYNTHETIC" in text
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0] == "full (ours)" and "HTNet" in labels and "EMR" not in labels  # unverified: left out
    plt.close("all")


def test_a_partial_seed_is_averaged_where_it_has_predictions():
    preds = toy_predictions(seeds=(0, 1))
    partial = preds[(preds.seed == 0) | (preds.dataset == "casme2")]  # seed 1 finished casme2 folds only
    summary = stats.add_intervals(summarize(partial), partial)
    for subset, entry in summary["subsets"].items():
        lo, hi = entry["uf1"]["ci95"]
        assert np.isfinite([lo, hi]).all() and lo <= entry["uf1"]["mean"] <= hi, subset
        assert stats.subset_intervals(partial)[subset]["uf1"]["estimate"] == pytest.approx(entry["uf1"]["mean"])
