"""A group of one trains the plain module (issue 32), and nothing made by the earlier engine is resumed.

The engine's numerics are part of what a result learned from (am3f.training.fit.ENGINE_REVISION): a run
folder or a tuning candidate made by the vmap-of-one engine rounds differently, so it is refused in one
line, never mixed with folds of this engine."""

from __future__ import annotations

import json

import numpy as np
import pytest

from am3f.app.cli import main
from am3f.errors import AM3FError
from am3f.protocol.engine import QUIET
from am3f.protocol.tuning import tune
from am3f.training import fit as train
from am3f.training.recipe import resolve_variant

LOSO = ["loso", "--model", "ststnet", "--epochs", "1", "--workers", "1", "--device", "cpu"]


def small_set():
    from am3f.app.notebook import synthetic_data

    data = synthetic_data()
    return data.subset(np.isin(data.subjects, data.subject_ids[:10]))


def test_a_group_of_one_trains_the_plain_module_with_the_stacked_recipe(monkeypatch):
    data = small_set()
    # NCHW: a vmapped group has no channels-last layout, and channels-last rounds (and lays dropout masks) otherwise
    model_cfg, train_cfg = resolve_variant("ststnet", epochs=2, ema=0.9, channels_last=False)
    rows = np.flatnonzero(data.subjects != data.subject_ids[0])
    test = np.flatnonzero(data.subjects == data.subject_ids[0])
    stacked, _ = train.fit_group(data, [rows, rows], model_cfg, train_cfg, seed=1, eval_sets=[test, test])
    built = []
    monkeypatch.setattr(train, "StackedModels", lambda *a, **k: built.append(a) or pytest.fail("vmap for one"))
    alone, scores = train.fit_group(data, [rows], model_cfg, train_cfg, seed=1, eval_sets=[test])
    assert len(alone) == 1 and scores[0].shape == (2, len(test), 3)
    # the same training as a stacked copy, up to float rounding (EMA weights, BN statistics included)
    for name, value in stacked[0].state_dict().items():
        np.testing.assert_allclose(alone[0].state_dict()[name].float(), value.float(), rtol=1e-4, atol=1e-4,
                                   err_msg=name)
    np.testing.assert_allclose(train.predict(alone[0], data.x[test], tta_flip=True),
                               train.predict(stacked[1], data.x[test], tta_flip=True), atol=1e-4)


def test_a_run_folder_of_the_earlier_engine_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*LOSO, "--folds", "0", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["engine"] == train.ENGINE_REVISION
    del config["engine"]  # as the engine before revision 2 wrote it
    (out / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert main([*LOSO, "--folds", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "differs in: engine" in err[0], err
    assert len(list((out / "folds").glob("*.json"))) == 1  # nothing of this engine was mixed in


@pytest.mark.slow
def test_a_tuning_candidate_of_the_earlier_engine_is_refused(tmp_path):
    data = small_set()
    out = tmp_path / "tune"
    tune(data, "ststnet", out, grid={"epochs": [1]}, seeds=[0], execution=QUIET)
    for path in (out / "cv").rglob("identity.json"):
        identity = json.loads(path.read_text())
        del identity["engine"]
        path.write_text(json.dumps(identity))
    with pytest.raises(AM3FError, match="other the engine's numerics"):
        tune(data, "ststnet", out, grid={"epochs": [1]}, seeds=[0], execution=QUIET)
