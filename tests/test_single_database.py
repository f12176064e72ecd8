"""The single-database protocol (`am3f loso --datasets`), the hold-out half in `am3f score` / `compare` /
tables, and the committed single-database table regenerated from its committed evidence."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from am3f.app.cli import main
from am3f.data.dataset import load_flow_dataset, select_datasets
from am3f.errors import DataError
from am3f.protocol import folds
from am3f.protocol.launch import config_hash, run_config
from am3f.protocol.run_folder import dataset_info
from am3f.results import stats

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- the filter
def test_select_datasets_keeps_exactly_those_samples_and_folds(two_dataset_root):
    data = load_flow_dataset(two_dataset_root)
    smic = select_datasets(data, "smic")
    assert set(smic.datasets.tolist()) == {"smic"} and len(smic) == 6
    assert folds.fold_names(smic) == ["s01", "s02"]  # one fold per SMIC subject, no other
    assert sorted(smic.sample_ids.tolist()) == sorted(data.sample_ids[data.datasets == "smic"].tolist())
    for k in range(len(folds.fold_names(smic))):  # a fold trains on the same database's other subjects only
        train, test = folds.fold_rows(smic, k)
        assert set(smic.datasets[train].tolist()) == {"smic"} and len(test)
    assert dataset_info(smic)["datasets"] == ["smic"] and "SMIC-HS only" in smic.describe()
    # kept through subsets (a fold's training set is one)
    assert smic.subset(np.arange(3)).only_datasets == ("smic",)


def test_without_the_filter_the_composite_run_is_unchanged(two_dataset_root):
    data = load_flow_dataset(two_dataset_root)
    assert "datasets" not in dataset_info(data)
    assert select_datasets(data, "") is data and select_datasets(data, None) is data
    assert select_datasets(data, "casme2,smic") is data  # every database: the composite run itself
    plain = run_config(data, variant="ststnet")
    filtered = run_config(select_datasets(data, "casme2"), variant="ststnet")
    assert config_hash(plain) != config_hash(filtered)  # never the same run folder
    assert filtered["dataset"]["datasets"] == ["casme2"] and "datasets" not in plain["dataset"]


def test_unknown_database_is_one_line(two_dataset_root, capsys):
    with pytest.raises(DataError, match="'samm' not in"):
        select_datasets(load_flow_dataset(two_dataset_root), "samm")
    code = main(["loso", "--data", str(two_dataset_root), "--datasets", "samm", "--out", "x", "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "samm" in err and "casme2, smic" in err


def test_loso_on_one_database_writes_only_it(two_dataset_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["loso", "--data", str(two_dataset_root), "--datasets", "smic", "--model", "ststnet", "--epochs", "1",
                 "--workers", "1", "--out", str(out)]) == 0
    preds = pd.read_csv(out / "predictions.csv", dtype={"subject": str})
    assert set(preds["dataset"]) == {"smic"} and len(preds) == 6 and preds["fold"].nunique() == 2
    assert json.loads((out / "config.json").read_text())["dataset"]["datasets"] == ["smic"]
    capsys.readouterr()
    assert main(["score", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "SMIC-HS only" in printed and "\nSMIC-HS " in printed and "\ncomposite" not in printed


# ----------------------------------------------------------------------------- the hold-out half
def test_holdout_is_the_half_outside_the_development_subjects(two_dataset_root):
    from am3f.protocol.development import dev_subjects

    preds = pd.DataFrame({"dataset": ["a"] * 4 + ["b"] * 3, "subject": ["1", "2", "3", "4", "x", "y", "z"]})
    assert stats.holdout_subjects(preds) == ("2", "4", "y")
    assert stats.holdout_subjects(preds, complete=False) == ()  # a partial run cannot deal the halves
    data = load_flow_dataset(two_dataset_root)  # the same rule for data and for predictions read back
    both = pd.DataFrame({"dataset": data.datasets, "subject": data.subjects})
    assert set(stats.holdout_subjects(both)) == set(data.subject_ids) - set(dev_subjects(data)) == {"sub02", "s02"}


def test_score_writes_the_holdout_subset(two_dataset_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["loso", "--data", str(two_dataset_root), "--model", "ststnet", "--epochs", "1", "--workers", "1",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["score", str(out)]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    hold = metrics["subsets"]["hold-out"]
    # casme2 sub01 sub02 sub03 -> sub02; smic s01 s02 -> s02: 4 + 3 samples
    assert hold["n"] == 7 and hold["n_subjects"] == 2
    assert {"mean", "std", "ci95"} <= set(hold["uf1"]) == {"mean", "std", "ci95"}
    assert "Hold-out" in printed
    # 5 subjects: every interval printed with a warning, never alone
    assert "warning: composite: only 5 subject(s)" in printed


def test_compare_warns_on_small_samples(two_dataset_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["loso", "--data", str(two_dataset_root), "--model", "ststnet", "--epochs", "1", "--workers", "1",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["compare", str(out), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "warning: composite: only 5 subject(s)" in printed and "Hold-out" in printed


# ----------------------------------------------------------------------------- the committed table
def test_single_database_table_regenerates_from_committed_evidence(tmp_path):
    """figures/single_database.md comes from figures/runs/single_database/ alone, byte for byte."""
    committed = REPO / "figures" / "single_database.md"
    evidence = REPO / "figures" / "runs" / "single_database"
    assert committed.is_file() and len(list(evidence.iterdir())) == 24
    out = tmp_path / "figures"
    (out / "runs").mkdir(parents=True)
    (out / "runs" / "single_database").symlink_to(evidence)
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "single_database.py"), "--from-evidence",
                    "--out", str(out)], check=True, capture_output=True, cwd=REPO)
    assert (out / "single_database.md").read_text() == committed.read_text()
    table = (out / "single_database.md").read_text()
    assert "Hold-out UF1" in table and table.count("| CASME II |") == 6 and table.count("| SMIC-HS |") == 6


def test_every_real_table_has_a_holdout_column():
    """Results, ablation and leaderboard tables of complete real-data runs (the committed composite runs of the
    single-database table) carry the hold-out half's UF1 with its interval, and the leaderboard half A's optimism."""
    from am3f.protocol.run_folder import load_evidence
    from am3f.results import leaderboard, tables

    evidence = REPO / "figures" / "runs" / "single_database"
    runs = {v: load_evidence(evidence / f"{v}-all") for v in ("full", "ststnet")}
    board = leaderboard.leaderboard_table(runs)
    assert "Hold-out UF1" in board and "Half A − hold-out UF1" in board
    assert all(c.count("[") == 1 for c in board["Hold-out UF1"])  # a value and its interval on every row
    holdout = stats.holdout_subjects(runs["full"].predictions)
    assert len(holdout) == 34  # the composite set's hold-out half
    clean = stats.subset_intervals(runs["full"].predictions, holdout=holdout)["hold-out"]["uf1"]["estimate"]
    assert board.loc[board["Method"].str.startswith("AM3F"), "Hold-out UF1"].iloc[0].startswith(f"{clean:.4f}")
    assert "Hold-out UF1" in tables.results_table(runs["full"])
    assert "Hold-out UF1" in tables.ablation_table(runs, reference="full")
    gap = stats.half_gap(runs["full"].predictions, holdout)
    assert gap["delta"] == pytest.approx(gap["a"] - gap["b"]) and gap["ci95"][0] < gap["delta"] < gap["ci95"][1]


def test_tables_name_the_databases_of_a_single_database_run():
    from am3f.protocol.run_folder import load_evidence
    from am3f.results import tables

    samm = tables.results_table(load_evidence(REPO / "figures" / "runs" / "single_database" / "full-samm"))
    assert "SAMM UF1" in samm and "Composite UF1" not in samm and "Hold-out UF1" in samm

