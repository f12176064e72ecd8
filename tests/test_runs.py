"""Runs: one configuration, one way to start them, and a fold's model that IS the run's model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from am3f.protocol import launch as runs
from am3f.protocol.engine import QUIET
from am3f.protocol.folds import held_out_rows
from am3f.training.fit import predict
from am3f.training.recipe import TrainConfig

from conftest import REPO

DATA = REPO / "tests" / "data"
TINY = dict(epochs=2, batch_size=8, warmup_epochs=1.0)


def tiny_two_dataset_set():
    """The first 5 subjects of the embedded synthetic set, split into two source datasets."""
    from dataclasses import replace

    from am3f.app.notebook import synthetic_data

    data = synthetic_data()
    keep = np.isin(data.subjects, data.subject_ids[:5])
    part = data.subset(keep)
    datasets = np.where(np.isin(part.subjects, part.subject_ids[:2]), "casme2", "samm")
    return replace(part, datasets=datasets)


@pytest.mark.slow
def test_a_fold_retrained_through_the_notebook_api_reproduces_the_run(tmp_path):
    """fold_model re-trains a fold with the run's whole recipe: its predictions on the held-out
    subject equal the run's, digit for digit."""
    data = tiny_two_dataset_set()
    config = runs.run_config(data, variant="full", **TINY)
    run = runs.start_run(data, config, tmp_path / "run", seeds=[1], execution=QUIET)
    written = pd.read_csv(run / "predictions.csv", dtype={"subject": str})
    cols = [f"score_{c}" for c in data.class_names]
    tta = TrainConfig.from_dict(config["train_config"]).tta_flip
    for subject in (data.subject_ids[0], data.subject_ids[3]):  # one of each source dataset
        rows = held_out_rows(data, subject)
        expected = written[written.subject == subject].sort_values("sample_id")[cols].to_numpy()
        order = np.argsort(data.sample_ids[rows], kind="stable")
        for cache in (False, True, True):  # re-trained, then cached to disk, then loaded from the cache
            model = runs.fold_model(run, data, subject, seed=1, cache=cache)
            got = predict(model, data.x[rows], tta_flip=tta)[order]
            assert np.array_equal(np.round(got, 6), np.round(expected, 6)), (subject, cache)


def test_a_run_made_before_ststnet_had_its_own_config_still_loads_and_reproduces(tmp_path):
    from am3f.app.notebook import synthetic_data
    from am3f.models.peers.ststnet import STSTNetConfig
    from am3f.training.recipe import DEFAULT_TRAIN

    legacy = json.loads((DATA / "ststnet-run-config-v0.1.json").read_text())
    model_cfg, train_cfg = runs.recipe_of(legacy)
    assert model_cfg == STSTNetConfig() and train_cfg == TrainConfig(**{**DEFAULT_TRAIN.__dict__, "epochs": 1})
    assert "threads" in legacy["train_config"] and "flows" in legacy["model_config"]  # what made it legacy
    # the run resumes in its own directory (its config.json is kept as written) and fold 0 comes out the same
    out = tmp_path / "legacy"
    (out / "folds").mkdir(parents=True)
    shutil.copy(DATA / "ststnet-run-config-v0.1.json", out / "config.json")
    data = synthetic_data()
    runs.start_run(data, legacy, out, seeds=[0], folds=[0], execution=QUIET)
    assert (out / "folds" / "s0_f000.csv").read_text() == (DATA / "ststnet-run-v0.1-s0_f000.csv").read_text()


def test_old_ststnet_weights_with_wrapper_names_load():
    from am3f.models.peers.ststnet import STSTNet

    model = STSTNet()
    legacy = {f"net.{k}": v + 1 for k, v in model.state_dict().items()}  # the former wrapper's names
    model.load_state_dict(legacy)
    assert torch.equal(model.conv1.weight, legacy["net.conv1.weight"])


def test_cli_and_notebook_make_the_same_run(tmp_path):
    from am3f.app.cli import main
    from am3f.app.notebook import synthetic_data

    data = synthetic_data()
    out = tmp_path / "cli"
    assert main(["loso", "--variant", "u", "--epochs", "1", "--folds", "0", "--workers", "1", "--device", "cpu",
                 "--out", str(out)]) == 0
    made = runs.ensure_run(data, "", runs_dir=tmp_path / "nb", variant="u", epochs=1, folds="0", workers=1,
                           device="cpu", show_progress=False)
    assert runs.config_hash(json.loads((out / "config.json").read_text())) == made.name.split("-")[-1]
    assert Path(out / "folds" / "s0_f000.csv").read_text() == (made / "folds" / "s0_f000.csv").read_text()
