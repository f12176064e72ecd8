"""The recipe is validated when built; a fold's rows and seed are computed in one place."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from am3f.app.cli import main
from am3f.errors import AM3FError
from am3f.protocol.folds import fold_groups, fold_of, fold_rows, fold_seed, held_out_rows, loso_split
from am3f.training.recipe import DEFAULT_TRAIN, TrainConfig, resolve_variant

from conftest import write_fake_composite

BAD_RECIPES = [
    ("lr", -1.0), ("lr", 0.0), ("lr", math.nan), ("lr", math.inf), ("weight_decay", -1e-3),
    ("weight_decay", math.nan), ("epochs", 0), ("epochs", -3), ("epochs", 1.5), ("epochs", True),
    ("batch_size", 0), ("fold_group", 0), ("n_models", 0), ("ema", 1.0), ("ema", -0.1), ("ema", math.nan),
    ("optimizer", "adamx"), ("schedule", "linear"),
    ("tau", -1.0), ("tau", math.nan), ("warmup_epochs", -1.0), ("label_smoothing", 1.0), ("hflip", 1.5),
    ("same_class_mix", -0.5), ("max_shift", 0.9), ("tta_flip", "yes"), ("weight_power", -2.0),
]


@pytest.mark.parametrize("field,value", BAD_RECIPES)
def test_every_nonsense_value_fails_when_the_recipe_is_built(field, value):
    with pytest.raises(AM3FError) as err:
        replace(DEFAULT_TRAIN, **{field: value})
    message = str(err.value)
    assert field in message and "\n" not in message
    with pytest.raises(AM3FError):  # as config.json would bring it back
        TrainConfig.from_dict({**DEFAULT_TRAIN.to_dict(), field: value})


def test_valid_recipes_build_and_every_problem_is_named_at_once():
    assert resolve_variant("rcn-authors")[1].optimizer == "sgd"
    with pytest.raises(AM3FError, match=r"lr must be .*; epochs must be"):
        TrainConfig(lr=-1, epochs=0)
    with pytest.raises(AM3FError, match="unknown training recipe field"):
        resolve_variant("full", learning_rate=0.1)


def test_a_recipe_holds_its_fields_only_and_an_older_record_is_refused_in_one_line():
    """Options the design search rejected (docs/design-choices.md names the commit that runs them) and the
    execution settings older runs recorded are no longer part of a recipe: a config.json that still holds one
    is refused in one line naming it, never read as if it were not there."""
    from dataclasses import fields

    from am3f.models.am3f_flownet import ModelConfig

    assert set(DEFAULT_TRAIN.to_dict()) | set(TrainConfig.ADDED_FIELDS) == {f.name for f in fields(TrainConfig)}
    assert set(ModelConfig().to_dict()) == {f.name for f in fields(ModelConfig)}
    for cls, key, value in ((TrainConfig, "priors", "fold"), (TrainConfig, "pretrain", ""), (TrainConfig, "threads", 4),
                            (ModelConfig, "msff_attend", "map")):
        with pytest.raises(AM3FError, match=f"unknown (training|model) config field\\(s\\): {key}") as err:
            cls.from_dict({**cls().to_dict(), key: value})
        assert "\n" not in str(err.value)
    with pytest.raises(AM3FError, match="unknown training recipe field\\(s\\): priors"):
        resolve_variant("full", priors="dataset")


CLI_BAD = [
    ["--lr", "-1"], ["--lr", "nan"], ["--epochs", "0"], ["--fold-group", "0"], ["--n-models", "0"],
    ["--batch-size", "0"], ["--ema", "1"], ["--weight-decay", "-1"], ["--tau", "-0.5"], ["--threads", "0"],
    ["--workers", "0"], ["--seeds", "-1"], ["--variant", "nope"], ["--model", "rcn", "--variant", "full"],
]


@pytest.mark.parametrize("extra", CLI_BAD, ids=lambda e: " ".join(e))
def test_cli_refuses_a_bad_recipe_in_one_line_before_anything_starts(extra, tmp_path, capsys):
    root = write_fake_composite(tmp_path / "d", {"s1": [0, 1, 2], "s2": [2, 1, 0]})
    out = tmp_path / "run"
    assert main(["loso", "--data", str(root), "--out", str(out), "--device", "cpu", *extra]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("am3f loso: error: ")
    assert captured.out == ""  # refused before the data was even loaded
    assert not out.exists()  # nothing was started
    if extra[0] != "--workers" and extra[0] != "--seeds":
        assert main(["train", "--data", str(root), "--out", str(tmp_path / "m.pt"), *extra]) == 2


# ----------------------------------------------------------------------------- the fold
def test_fold_rows_are_leave_one_group_out(fake_composite):
    from sklearn.model_selection import LeaveOneGroupOut

    from am3f.data.dataset import load_flow_dataset

    data = load_flow_dataset(fake_composite)
    ours = list(loso_split(data))
    theirs = list(LeaveOneGroupOut().split(data.x, data.labels, groups=data.subjects))
    assert len(ours) == len(theirs) == len(data.subject_ids)
    for (tr, te), (tr2, te2) in zip(ours, theirs):  # both go through the groups in sorted order
        np.testing.assert_array_equal(tr, tr2)
        np.testing.assert_array_equal(te, te2)
    assert sorted(np.concatenate([te for _, te in ours]).tolist()) == list(range(len(data)))
    k = fold_of(data, "sub02")
    np.testing.assert_array_equal(held_out_rows(data, "sub02"), fold_rows(data, k)[1])
    with pytest.raises(ValueError, match="not in"):
        fold_of(data, "nobody")


def test_fold_seed_and_groups():
    assert [fold_seed(s, m) for s in (0, 1) for m in (0, 1)] == [0, 1, 1000, 1001]
    from am3f.data.dataset import FlowDataset

    n = 12
    data = FlowDataset(np.zeros((n, 3, 8, 8), np.float32), np.zeros(n, np.int64),
                       np.repeat(["a", "b", "c", "d"], [2, 2, 2, 6]), np.array(["x"] * n),
                       np.array([f"i{i}" for i in range(n)]))
    cfg = TrainConfig(batch_size=4, fold_group=2)
    # training sets of 10, 10, 10 (2 batches) and 6 (1 batch): grouped by shape, at most 2 a group
    assert fold_groups(data, cfg) == [[0, 1], [2], [3]]


# ----------------------------------------------------------------------------- the cross-database split
def two_dataset_set():
    from am3f.data.dataset import FlowDataset

    subjects = np.repeat(["a1", "a2", "b1", "b2", "c1"], 3)
    datasets = np.array([s[0] for s in subjects])
    return FlowDataset(np.zeros((15, 3, 8, 8), np.float32), np.tile([0, 1, 2], 5), subjects, datasets,
                       np.array([f"i{i}" for i in range(15)]))


def test_the_cross_database_split_holds_out_one_source_dataset_per_fold():
    from am3f.protocol.folds import check_fold, fold_names, with_split

    data = with_split(two_dataset_set(), "dataset")
    assert fold_names(data) == ["a", "b", "c"]
    for k, (train, test) in enumerate(loso_split(data)):
        check_fold(data, k)
        assert set(data.datasets[test]) == {fold_names(data)[k]}
        assert fold_names(data)[k] not in set(data.datasets[train])
    assert fold_of(data, "b2") == 1  # a subject's fold is its dataset's
    np.testing.assert_array_equal(held_out_rows(data, "b2"), np.flatnonzero(data.subjects == "b2"))
    assert fold_names(with_split(data, "subject")) == ["a1", "a2", "b1", "b2", "c1"]
    with pytest.raises(AM3FError, match="split must be one of"):
        with_split(data, "session")
    one = two_dataset_set()
    one.datasets[:] = "a"
    with pytest.raises(AM3FError, match="at least two source datasets"):
        with_split(one, "dataset")


@pytest.mark.real_data
def test_loso_split_dataset_predicts_every_sample_once_in_three_folds(composite_dir, tmp_path):
    import json

    import pandas as pd

    out = tmp_path / "xdb"
    assert main(["loso", "--split", "dataset", "--data", str(composite_dir), "--epochs", "1", "--workers", "1",
                 "--device", "cpu", "--out", str(out)]) == 0
    preds = pd.read_csv(out / "predictions.csv")
    assert len(preds) == 442 and preds["sample_id"].is_unique and sorted(preds["fold"].unique()) == [0, 1, 2]
    for _, g in preds.groupby("fold"):  # each fold is one whole source dataset
        assert g["dataset"].nunique() == 1
    run = json.loads((out / "run.json").read_text())
    assert run["complete"] and run["config"]["dataset"]["split"] == "dataset"
    assert main(["score", str(out)]) == 0


def test_the_memory_layout_is_recorded_only_where_a_recipe_uses_it():
    """channels_last (added after runs were recorded) is in a recipe's record only when set, so the records and
    run folder names of every recipe without it read as before; a vmapped fold group trains in NCHW and records so."""
    from am3f.models.registry import ARCHITECTURES

    assert "channels_last" not in resolve_variant("full")[1].to_dict()
    declared = [name for name, spec in ARCHITECTURES.items() if spec.channels_last]
    assert declared, "the registry declares no channels-last architecture"
    for name in declared:
        cfg = resolve_variant(name)[1]
        assert cfg.channels_last and cfg.to_dict()["channels_last"] is True
        assert TrainConfig.from_dict(cfg.to_dict()) == cfg
        assert not resolve_variant(name, fold_group=4)[1].channels_last
    with pytest.raises(AM3FError, match="channels_last must be true or false"):
        TrainConfig(channels_last="yes")
