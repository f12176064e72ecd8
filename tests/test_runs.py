"""Runs: one configuration, one way to start them, and a fold's model that IS the run's model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from am3f.errors import AM3FError
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


def test_a_run_folder_of_an_older_am3f_is_refused_in_one_line_not_resumed(tmp_path):
    """A config.json written by am3f 0.1 (STSTNet recorded with AM3F-FlowNet's model fields, the recipe with
    threads): its folds cannot be resumed into by this version, which says so in one line."""
    from am3f.app.notebook import synthetic_data

    old = json.loads((DATA / "ststnet-run-config-v0.1.json").read_text())
    with pytest.raises(AM3FError, match="unknown .* config field") as err:
        runs.recipe_of(old)
    assert "\n" not in str(err.value)
    out = tmp_path / "old"
    (out / "folds").mkdir(parents=True)
    shutil.copy(DATA / "ststnet-run-config-v0.1.json", out / "config.json")
    data = synthetic_data()
    config = runs.run_config(data, variant="ststnet", epochs=1)
    with pytest.raises(AM3FError, match="started with a different configuration .*use a new --out") as err:
        runs.start_run(data, config, out, seeds=[0], folds=[0], execution=QUIET)
    assert not list((out / "folds").iterdir())


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
