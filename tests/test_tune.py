"""Cross-fitted tuning (am3f.protocol.tuning, `am3f tune`, `am3f loso --recipe`): no fold's recipe sees its test
subject."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from am3f.app.cli import main
from am3f.errors import AM3FError
from am3f.models.registry import ARCHITECTURES
from am3f.protocol import launch as runs
from am3f.protocol.engine import QUIET
from am3f.protocol.tuning import candidates, default_grid, halves, parse_grid, read_recipes, tune

TINY = dict(epochs=1, batch_size=16, warmup_epochs=0.0)
GRID = {"epochs": [1, 2], "tau": [1.0, 0.0]}


def small_set():
    """10 subjects of the embedded synthetic set (5 per half)."""
    from am3f.app.notebook import synthetic_data

    data = synthetic_data()
    return data.subset(np.isin(data.subjects, data.subject_ids[:10]))


def tuned(data, out, grid=GRID):
    return tune(data, "ststnet", out, grid=grid, seeds=[0], execution=QUIET)


def relabelled(data, half_subjects):
    """``data`` with the first sample of the first subject of ``half_subjects`` given another label."""
    labels = data.labels.copy()
    row = int(np.flatnonzero(data.subjects == half_subjects[0])[0])
    labels[row] = (labels[row] + 1) % 3
    return replace(data, labels=labels)


def test_every_architecture_gets_the_same_declared_budget():
    for arch in ARCHITECTURES:
        grid = default_grid(arch)
        assert len(candidates(grid)) == 8, arch
        assert set(grid) == {"lr", "epochs", "tau"} and grid["epochs"] == [20, 60] and grid["tau"] == [1.0, 0.0]
        assert grid["lr"][0] == 1e-2 and grid["lr"][1] != 1e-2  # ours, then the authors' (or a declared other)
    assert default_grid("ststnet")["lr"][1] == 5e-5 and default_grid("rcn")["lr"][1] == 5e-4


def test_grid_parsing_types_values_and_refuses_nonsense():
    assert parse_grid(["lr=1e-2,1e-3", "epochs=20,60", "tta-flip=true,false"]) == {
        "lr": [0.01, 0.001], "epochs": [20, 60], "tta_flip": [True, False]}
    assert parse_grid(None) is None
    for bad in (["lr"], ["lr="], ["nope=1"], ["lr=-1"], ["epochs=1.5"], ["lr=1", "lr=2"], ["optimizer=rmsprop"],
                ["fold_group=1,2"]):
        with pytest.raises(AM3FError):
            parse_grid(bad)


def test_the_halves_partition_the_subjects():
    data = small_set()
    h = halves(data)
    assert set(h["A"]) | set(h["B"]) == set(data.subject_ids) and not set(h["A"]) & set(h["B"])


@pytest.mark.slow
def test_a_label_of_one_half_never_reaches_the_other_halfs_tuning(tmp_path):
    """Changing a label in half B leaves half A's candidates and choice unchanged, and the reverse."""
    data = small_set()
    split = halves(data)
    base = tuned(data, tmp_path / "base")["halves"]
    for changed, kept in (("B", "A"), ("A", "B")):
        other = tuned(relabelled(data, split[changed]), tmp_path / f"changed-{changed}")["halves"]
        assert other[kept] == base[kept], kept
        assert other[changed]["subjects"] == base[changed]["subjects"]
    assert set(base["A"]) == {"subjects", "chosen", "candidates"}
    assert [c["overrides"] for c in base["A"]["candidates"]] == candidates(GRID)


@pytest.mark.slow
def test_the_same_tune_command_twice_writes_the_identical_recipes_json(tmp_path, monkeypatch, capsys):
    from am3f.data import dataset as data_module

    monkeypatch.setattr(data_module, "load_dataset", lambda root=None: small_set())
    outs = []
    for name in ("one", "two"):
        assert main(["tune", "--model", "ststnet", "--grid", "epochs=1,2", "--out", str(tmp_path / name),
                     "--workers", "1"]) == 0
        outs.append((tmp_path / name / "recipes.json").read_bytes())
    assert outs[0] == outs[1]
    shape = json.loads(outs[0])
    assert set(shape) == {"model", "variant", "grid", "seeds", "data_fingerprint", "halves"}
    assert set(shape["halves"]) == {"A", "B"}
    assert "chose" in capsys.readouterr().out
    # resumed: a finished tuning is read back, not trained again
    assert main(["tune", "--model", "ststnet", "--grid", "epochs=1,2", "--out", str(tmp_path / "one"),
                 "--workers", "1"]) == 0
    assert (tmp_path / "one" / "recipes.json").read_bytes() == outs[0]


@pytest.mark.slow
def test_a_cross_fitted_run_trains_each_fold_with_the_other_halfs_recipe(tmp_path):
    data = small_set()
    tuned(data, tmp_path / "tune", grid={"epochs": [1, 2], "lr": [1e-2, 1e-3]})
    recipes = tmp_path / "tune" / "recipes.json"
    t = read_recipes(recipes)
    config = runs.run_config(data, model="ststnet", recipe=recipes, batch_size=16, warmup_epochs=0.0)
    record = config["tuned_recipe"]
    assert record["sha256"] == t["sha256"] and set(record["tuned_on"]) == {"A", "B"}
    run = runs.start_run(data, config, tmp_path / "run", seeds=[0], execution=QUIET)
    side = {s: h for h in "AB" for s in t["halves"][h]["subjects"]}
    for f in sorted((run / "folds").glob("*.json")):
        meta = json.loads(f.read_text())
        assert meta["info"]["recipe_tuned_on"] != side[meta["subject"]]
    # a fold's scores are those of a plain run with the recipe tuned on the other half (up to rounding)
    preds = pd.read_csv(run / "predictions.csv", dtype={"subject": str})
    cols = [c for c in preds if c.startswith("score_")]
    for h, other in (("A", "B"), ("B", "A")):
        plain = runs.run_config(data, model="ststnet", batch_size=16, warmup_epochs=0.0, **t["halves"][other]["chosen"])
        plain_run = runs.start_run(data, plain, tmp_path / f"plain-{other}", seeds=[0], execution=QUIET)
        ref = pd.read_csv(plain_run / "predictions.csv", dtype={"subject": str})
        mine = preds[preds.subject.isin(t["halves"][h]["subjects"])].sort_values("sample_id")
        theirs = ref[ref.subject.isin(t["halves"][h]["subjects"])].sort_values("sample_id")
        assert np.allclose(mine[cols].to_numpy(), theirs[cols].to_numpy(), atol=1e-4), h


def test_recipe_files_that_do_not_fit_are_refused_in_one_line(tmp_path):
    data = small_set()
    good = {"model": "ststnet", "variant": "ststnet", "grid": {"lr": [0.01]}, "seeds": [0],
            "halves": {h: {"subjects": s, "chosen": {"lr": 0.01}, "candidates": []} for h, s in halves(data).items()}}
    path = tmp_path / "recipes.json"
    path.write_text(json.dumps(good))
    cases = {
        "for variant 'ststnet'": lambda: runs.run_config(data, model="rcn", recipe=path),
        "do not set": lambda: runs.run_config(data, model="ststnet", recipe=path, lr=0.1),
        "cannot read": lambda: runs.run_config(data, recipe=tmp_path / "missing.json"),
    }
    for needle, call in cases.items():
        with pytest.raises(AM3FError, match=needle):
            call()
    other = dict(good, halves={h: dict(v, subjects=v["subjects"][1:]) for h, v in good["halves"].items()})
    path.write_text(json.dumps(other))
    with pytest.raises(AM3FError, match="in neither tuned half"):
        runs.run_config(data, model="ststnet", recipe=path)
    path.write_text(json.dumps(dict(good, halves={"A": good["halves"]["A"]})))
    with pytest.raises(AM3FError, match="not a recipes.json"):
        runs.run_config(data, model="ststnet", recipe=path)


def test_ensemble_members_are_the_best_subset_on_the_inner_cv_ties_to_fewer():
    from am3f.results.ensemble import choose_members

    labels = np.array([0, 1, 2, 0, 1, 2])
    right = np.eye(3)[labels]
    wrong = np.eye(3)[(labels + 1) % 3]

    def frame(scores):
        classes = ("negative", "positive", "surprise")
        return pd.DataFrame({"sample_id": [f"s{i}" for i in range(6)], "seed": 0, "label": labels,
                             **{f"score_{c}": scores[:, i] for i, c in enumerate(classes)}})

    members, uf1 = choose_members({"bad": frame(wrong), "good": frame(right), "also": frame(right)})
    assert members == ["good"] and uf1 == 1.0  # "good + also" ties at 1.0: fewer members win


@pytest.mark.slow
def test_the_ensemble_averages_the_members_chosen_on_the_other_half(tmp_path):
    from am3f.results.ensemble import build_ensemble

    data = small_set()
    runs_by_arch, tune_dirs = {}, {}
    for arch in ("ststnet", "rcn"):
        tune(data, arch, tmp_path / f"tune-{arch}", grid={"epochs": [1, 2]}, seeds=[0], execution=QUIET)
        tune_dirs[arch] = tmp_path / f"tune-{arch}"
        config = runs.run_config(data, model=arch, recipe=tune_dirs[arch] / "recipes.json", batch_size=16)
        runs_by_arch[arch] = runs.start_run(data, config, tmp_path / f"run-{arch}", seeds=[0], execution=QUIET)
    out = build_ensemble(data, runs_by_arch, tune_dirs, tmp_path / "ensemble")
    config = json.loads((out / "config.json").read_text())
    preds = pd.read_csv(out / "predictions.csv", dtype={"subject": str}).set_index("sample_id")
    members = {a: pd.read_csv(p / "predictions.csv").set_index("sample_id") for a, p in runs_by_arch.items()}
    cols = [c for c in preds if c.startswith("score_")]
    side = {s: h for h in "AB" for s in halves(data)[h]}
    for f in sorted((out / "folds").glob("*.json")):
        meta = json.loads(f.read_text())
        chosen_on = meta["info"]["members_chosen_on"]
        assert chosen_on != side[meta["subject"]]
        assert meta["info"]["members"] == config["chosen"][chosen_on]["members"]
        ids = preds.index[preds.subject == meta["subject"]]
        expected = np.mean([members[m].loc[ids, cols].to_numpy() for m in meta["info"]["members"]], axis=0)
        assert np.allclose(preds.loc[ids, cols].to_numpy(), expected, atol=1e-5)


@pytest.mark.slow
def test_the_leaderboard_leads_with_tuned_rows_and_their_ensemble(tmp_path):
    from am3f.results import leaderboard

    data = small_set()
    for arch in ("am3f", "ststnet"):  # tunings made beforehand (tiny grids), found by the board
        tune(data, arch, tmp_path / "tuning" / arch, grid={"epochs": [1, 2]}, seeds=[0], execution=QUIET)
    runs_ = leaderboard.board_runs(data, tmp_path / "runs", variants=["ststnet"], tuned=["am3f", "ststnet"],
                                   tuning_dir=tmp_path / "tuning", epochs=1, workers=1, folds="0-3")
    assert list(runs_) == ["am3f-tuned", "ststnet-tuned", "ensemble", "ststnet"]
    table = leaderboard.leaderboard_table(runs_)
    assert list(table["Schedule"])[:3] == ["ensemble of tuned", "tuned (cross-fitted)", "tuned (cross-fitted)"]
    assert list(table["Protocol"])[-1] == "fixed schedule"
    assert "Δ UF1 vs AM3F-FlowNet (ours), tuned" in table.columns
    tuned_row = table[table["Method"] == "STSTNet"].iloc[0]
    assert tuned_row["Recipe"].startswith("A: ep ") and " | B: ep " in tuned_row["Recipe"]
    assert table["Seeds"].astype(str).str.contains("PARTIAL").all()  # 4 of 10 folds


def test_loso_recipe_on_the_command_line(tmp_path, monkeypatch, capsys):
    from am3f.data import dataset as data_module

    data = small_set()
    monkeypatch.setattr(data_module, "load_dataset", lambda root=None: data)
    recipes = {"model": "ststnet", "variant": "ststnet", "grid": {"epochs": [1, 2]}, "seeds": [0],
               "halves": {h: {"subjects": s, "chosen": {"epochs": 1 if h == "A" else 2}, "candidates": []}
                          for h, s in halves(data).items()}}
    path = tmp_path / "recipes.json"
    path.write_text(json.dumps(recipes))
    out = tmp_path / "run"
    assert main(["loso", "--model", "ststnet", "--recipe", str(path), "--epochs", "3", "--out", str(out)]) == 2
    assert "tunes epochs" in capsys.readouterr().err
    assert main(["loso", "--model", "ststnet", "--recipe", str(path), "--folds", "0-1", "--workers", "1",
                 "--batch-size", "16", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "cross-fitted recipes from" in said and "tuned on A (5 subjects): epochs 1" in said
    config = json.loads((out / "config.json").read_text())
    assert config["tuned_recipe"]["tuned_on"]["B"]["train_config"]["epochs"] == 2
    assert len(list((out / "folds").glob("*.json"))) == 2
