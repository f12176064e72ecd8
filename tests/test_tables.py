"""Result tables and their writers, on tiny toy runs (no training)."""

from pathlib import Path

import numpy as np
import pandas as pd

from am3f.data.dataset import load_flow_dataset
from am3f.protocol.engine import QUIET, run_loso
from am3f.protocol.metrics import megc_scores
from am3f.protocol.run_folder import load_run
from am3f.results import stats, tables, writers

from conftest import EpochRunner


def _per_seed_uf1(predictions):
    return [megc_scores(g.label, g.pred)["uf1"] for _, g in predictions.groupby("seed")]


def test_results_table_mean_std_over_seeds(run_dir):
    run = load_run(run_dir)
    table = tables.results_table(run)
    assert list(table["Method"]) == ["full"] and table["Seeds"].iloc[0] == 2
    per_seed = _per_seed_uf1(run.predictions)
    expected = tables.format_mean_std(np.mean(per_seed), np.std(per_seed, ddof=1), 2)
    lo, hi = stats.subset_intervals(run.predictions)["composite"]["uf1"]["ci95"]
    assert table["Composite UF1"].iloc[0] == f"{expected} [{lo:.3f}, {hi:.3f}]" and "±" in expected
    assert "[" not in tables.results_table(run, intervals=False)["Composite UF1"].iloc[0]
    assert {"CASME II UAR", "SMIC-HS Acc."} <= set(table.columns)
    assert list(table.columns).index("Composite UF1") < list(table.columns).index("CASME II UF1")


def test_format_mean_std():
    assert tables.format_mean_std(0.72094, 0.01, 1) == "0.7209"
    assert tables.format_mean_std(0.72094, 0.01234, 3) == "0.7209 ± 0.0123"
    assert tables.format_mean_std(float("nan")) == writers.EMPTY


def test_markdown_and_latex_writers(run_dir, tmp_path):
    table = tables.results_table(run_dir)
    paths = writers.write_table(table, tmp_path / "figs", "results", caption="LOSO results", synthetic=True)
    md = paths["md"].read_text()
    assert paths["md"].name == "results_synthetic.md" and "SYNTHETIC" in md
    assert md.count("\n|") >= 2 and "| Method |" in md
    tex = paths["tex"].read_text()
    assert r"\toprule" in tex and r"$\pm$" in tex and "±" not in tex and "SYNTHETIC" in tex
    assert pd.read_csv(paths["csv"]).shape[0] == 1
    assert writers.latex_escape("a_b & 50%") == r"a\_b \& 50\%"


def test_peers_table_has_protocol_and_sources(run_dir):
    table = tables.peers_table(run_dir)
    assert {"Method", "Protocol", "Source", "Composite UF1", "Composite UAR"} <= set(table.columns)
    row = table[table.Method == "HTNet"].iloc[0]
    assert row["Composite UF1"] == "0.8603" and "best test epoch" in row["Protocol"]
    feat = table[table.Method == "FeatRef"].iloc[0]
    assert feat["CASME II UF1"] == "0.8915" and feat["CASME II UAR"] == writers.EMPTY
    emr = table[table.Method == "EMR"].iloc[0]
    assert emr["Composite UF1"] == writers.EMPTY  # unverified numbers are left empty, never guessed
    assert all(table["Source"].str.len() > 0)
    assert table.iloc[0]["Source"].startswith("this repository")
    assert table.iloc[0]["Method"].startswith("AM3F-FlowNet, ours")


def test_published_peers_file_has_one_source_per_row():
    peers = tables.published_peers()
    assert peers["source"].str.len().min() > 10 and peers["method"].is_unique
    assert peers.loc[peers.method == "STSTNet (as published)", "composite_uar"].item() == 0.7605
    # one mark for "none", in the file (empty) and on screen ("—"), never "--" beside it
    raw = (Path(tables.__file__).parents[1] / "published_peers.csv").read_text(encoding="utf-8")
    assert ",--," not in raw
    assert set(peers.loc[peers.method.isin(["RCN", "OFF-ApexNet"]), "protocol"]) == {"—"}


def test_peers_table_recomputes_ststnet_row_from_a_run(run_dir):
    table = tables.peers_table(None, ststnet_run=run_dir)
    row = table[table.Method.str.startswith("STSTNet (published weights")].iloc[0]
    preds = load_run(run_dir).predictions
    smic = preds[preds.dataset == "smic"]
    assert row["Composite UF1"] == f"{np.mean(_per_seed_uf1(preds)):.4f}"
    assert row["SMIC-HS UF1"] == f"{np.mean(_per_seed_uf1(smic)):.4f}"
    assert "recomputed" in row["Source"]


def test_ablation_table_deltas(two_dataset_root, tmp_path):
    data = load_flow_dataset(two_dataset_root)
    runs = {}
    for i, name in enumerate(["full", "no_msff"]):
        runs[name] = run_loso(data, EpochRunner(n_epochs=2 + i), tmp_path / name, seeds=[0],
                              config={"variant": name}, execution=QUIET)
    table = tables.ablation_table(runs, descriptions={"full": "everything", "no_msff": "no fusion"})
    assert list(table.Variant) == ["full", "no_msff"]
    uf1 = {name: _per_seed_uf1(load_run(path).predictions)[0] for name, path in runs.items()}
    assert table["Δ UF1"].iloc[0] == writers.EMPTY
    assert table["Δ UF1"].iloc[1].startswith(f"{uf1['no_msff'] - uf1['full']:+.4f} [")
    delta = stats.paired_deltas(runs).set_index("metric").loc["uf1"]
    assert table["Δ UF1"].iloc[1] == stats.format_delta(delta["delta"], (delta["lo"], delta["hi"]))
    assert table["p (UF1)"].iloc[1] == f"{delta['p']:.3f}" and table["Δ UAR"].iloc[1] != writers.EMPTY
    assert table["Verdict (Δ UF1)"].tolist() == ["reference", delta["verdict"]]
    assert table["What changes"].tolist() == ["everything", "no fusion"]
