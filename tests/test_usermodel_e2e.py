"""A researcher's own model, end to end, as a new user brings it: a network written elsewhere for 64 x 64
input, whose factory upsamples the 28 x 28 flow images. Shards that waste nothing, notebook 10 and
reproduce that take the model, checkpoints that travel, a cross-fitted run that says its recipes."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from am3f.app.cli import main
from am3f.flow.synth import default_synthetic_root

OUTSIDE = '''
"""A small micro-expression CNN as a public toolkit would ship it: written for 64 x 64 input."""
import torch.nn.functional as F
from torch import nn


class Net64(nn.Module):
    def __init__(self, num_classes=3):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(4),
                                      nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4))
        self.fc = nn.Linear(8 * 4 * 4, num_classes)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


class Upsampled(nn.Module):
    def __init__(self, inner, size=64):
        super().__init__()
        self.inner, self.size = inner, size

    def forward(self, x):
        return self.inner(F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False))


def build(num_classes=3):
    print("toolkit: building Net64")  # a chatty model: its prints must not reach machine-readable output
    return Upsampled(Net64(num_classes))


def quits(num_classes=3):
    import sys
    sys.exit(0)
'''


@pytest.fixture
def outside(tmp_path):
    path = tmp_path / "toolkit" / "toolkit_net.py"
    path.parent.mkdir()
    path.write_text(OUTSIDE)
    return path


def _loso(model: str, out, folds: str) -> None:
    assert main(["loso", "--model", model, "--data", str(default_synthetic_root()), "--epochs", "1",
                 "--fold-group", "4", "--workers", "1", "--device", "cpu", "--folds", folds, "--out", str(out)]) == 0


def test_a_shard_keeps_the_folds_its_group_trained_and_the_next_shard_takes_them(outside, tmp_path, capsys):
    model = f"{outside}:build"
    _loso(model, tmp_path / "whole", "0-3")
    _loso(model, tmp_path / "shards", "0")  # trains group {0, 1, 2, 3}: folds 1-3 are kept, not thrown away
    said = capsys.readouterr().out
    assert "training 1 fold(s) in 1 group(s); the group(s) also hold 3 fold(s) not asked for" in said
    run = json.loads((tmp_path / "shards" / "run.json").read_text())
    assert run["folds_done"] == {"0": 1} and run["spare_folds"]["folds_per_seed"] == {"0": 3}
    assert run["spare_folds"]["core_s"] > 0  # what really trained is on record
    _loso(model, tmp_path / "shards", "0-3")
    said = capsys.readouterr().out
    assert "3 of them taken from" in said and "fold(s) in 1 group(s)" not in said  # nothing trained again
    assert not list((tmp_path / "shards" / "spare" / "folds").glob("*.json"))
    whole = (tmp_path / "whole" / "predictions.csv").read_text()
    assert (tmp_path / "shards" / "predictions.csv").read_text() == whole  # byte-identical whatever the sharding


def test_a_checkpoint_predicts_after_its_model_file_moved_and_its_prints_stay_off_the_json(outside, tmp_path, capsys):
    ckpt = tmp_path / "model.pt"
    assert main(["train", "--model", f"{outside}:build", "--data", str(default_synthetic_root()), "--epochs", "1",
                 "--device", "cpu", "--out", str(ckpt)]) == 0
    trained = capsys.readouterr().out
    flow = next((default_synthetic_root() / "flows").glob("*.png"))
    image = tmp_path / "flow.png"
    shutil.copy(flow, image)
    assert main(["predict", "--checkpoint", str(ckpt), "--json", "--device", "cpu", str(image)]) == 0
    before = capsys.readouterr()
    shutil.move(outside.parent, tmp_path / "moved")  # shared with a colleague: the file is not there
    assert main(["predict", "--checkpoint", str(ckpt), "--json", "--device", "cpu", str(image)]) == 0
    after = capsys.readouterr()
    assert json.loads(after.out) == json.loads(before.out)  # stdout is the JSON alone, the same predictions
    assert "the copy of toolkit_net.py stored in the checkpoint" in after.err and "not found" in after.err
    (tmp_path / "moved" / "toolkit_net.py").write_text(OUTSIDE.replace("8 * 4 * 4", "8 * 4 * 4 + 0"))
    shutil.move(tmp_path / "moved", outside.parent)  # back, but changed: still the trained code is used
    assert main(["predict", "--checkpoint", str(ckpt), "--json", "--device", "cpu", str(image)]) == 0
    assert "changed since training" in capsys.readouterr().err
    assert "the checkpoint holds the code of toolkit_net.py" in trained  # `am3f train` says so


def test_a_module_checkpoint_says_what_is_missing(tmp_path, monkeypatch, capsys):
    package = tmp_path / "site" / "toolkitpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(OUTSIDE)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    ckpt = tmp_path / "model.pt"
    assert main(["train", "--model", "toolkitpkg.nets:build", "--data", str(default_synthetic_root()), "--epochs",
                 "1", "--device", "cpu", "--out", str(ckpt)]) == 0
    trained = capsys.readouterr().out
    (package / "nets.py").write_text(OUTSIDE + "\n# a later version\n")
    assert main(["predict", "--checkpoint", str(ckpt), "--device", "cpu",
                 str(next((default_synthetic_root() / "flows").glob("*.png")))]) == 2
    err = capsys.readouterr().err
    assert "trained with module toolkitpkg.nets of package toolkitpkg" in err and "differs" in err
    assert len(err.strip().splitlines()) == 1
    assert "records module toolkitpkg.nets of package toolkitpkg" in trained  # `am3f train` says what it needs


def test_a_factory_that_exits_is_a_one_line_error(outside, tmp_path, capsys):
    assert main(["loso", "--model", f"{outside}:quits", "--epochs", "1", "--folds", "0", "--workers", "1",
                 "--device", "cpu", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "the factory called sys.exit(0)" in err and len(err.strip().splitlines()) == 1


def test_a_cross_fitted_run_says_each_halfs_recipe(tmp_path, monkeypatch, capsys):
    from am3f.app.notebook import synthetic_data
    from am3f.data import dataset as data_module
    from am3f.protocol import launch as runs
    from am3f.protocol.tuning import halves

    data = synthetic_data()
    data = data.subset(np.isin(data.subjects, data.subject_ids[:10]))
    monkeypatch.setattr(data_module, "load_dataset", lambda root=None: data)
    recipes = {"model": "ststnet", "variant": "ststnet", "grid": {"epochs": [1, 2]}, "seeds": [0],
               "halves": {h: {"subjects": s, "chosen": {"epochs": 1 if h == "A" else 2}, "candidates": []}
                          for h, s in halves(data).items()}}
    (tmp_path / "recipes.json").write_text(json.dumps(recipes))
    out = tmp_path / "run"
    assert main(["loso", "--model", "ststnet", "--recipe", str(tmp_path / "recipes.json"), "--folds", "0",
                 "--workers", "1", "--batch-size", "16", "--device", "cpu", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["train_config"]["tuned_on_A"]["epochs"] == 1 and config["train_config"]["tuned_on_B"]["epochs"] == 2
    assert config["base_train_config"]["epochs"] == 20  # the base recipe, under its own name: no fold trained it
    assert out.name != runs.run_name(config["variant"])  # (the folder name is the user's here)
    capsys.readouterr()
    assert main(["score", str(out)]) == 0
    said = capsys.readouterr().out
    assert "recipe tuned on half A (5 subjects), used for the folds of the other half: epochs 1" in said
    assert "recipe tuned on half B (5 subjects), used for the folds of the other half: epochs 2" in said


@pytest.mark.slow
def test_notebook_10_and_reproduce_take_the_model(outside, tmp_path):
    pytest.importorskip("papermill")
    import nbformat

    from am3f.app.reproduce import reproduce

    out = reproduce(notebooks=["10_your_model"], out=tmp_path / "out", model=f"{outside}:build",
                    show_progress=False)
    nb = nbformat.read(out / "10_your_model.ipynb", as_version=4)
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                   for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "toolkit_net.py:build [SYNTHETIC]" in text  # its run, under its own name
    assert "my_model.py" not in text.replace("Writing", "").split("toolkit_net.py:build")[1]
    assert list((out / "runs").glob("toolkit_net.py_build-*"))
    assert not list((out / "runs").glob("my_model.py_build-*"))  # the notebook's demo model did not train


def _constant(train, test, *, seed, fold):
    """A toy fold runner, as a plain function: the same scores for every test sample."""
    from am3f.protocol.run_folder import FoldOutput

    return FoldOutput(scores=np.tile([0.5, 0.3, 0.2], (len(test), 1)))


def test_tables_and_the_audit_call_a_user_model_by_its_own_name(fake_composite, tmp_path):
    from am3f.data.dataset import load_flow_dataset
    from am3f.protocol.engine import QUIET, run_loso
    from am3f.protocol.run_folder import load_run
    from am3f.results import audit, tables

    ref = str(tmp_path / "elsewhere" / "toolkit_net.py") + ":build"
    out = run_loso(load_flow_dataset(fake_composite), _constant, tmp_path / "run", execution=QUIET,
                   config={"model": ref, "variant": ref})
    run = load_run(out)
    assert run.label == "toolkit_net.py:build"  # its file and factory, not the folder it lay in
    assert tables.run_title(run) == "toolkit_net.py:build"  # results.md's title
    mine = tables.peers_table(run)["Method"].iloc[0]
    assert mine == "toolkit_net.py:build, in our harness" and "AM3F" not in mine
    assert audit.protocol_audit(run)["Protocol"].iloc[0] == "Fixed schedule, mean over seeds (honest)"


def test_models_shows_one_user_model(outside, capsys):
    assert main(["models", "--model", f"{outside}:build"]) == 0
    said = capsys.readouterr().out
    assert re.search(r"^toolkit_net\.py:build: [\d,]+ params for 3 classes at 28x28$", said, re.M)
    assert "contract check: passed" in said and f"source: file {outside}" in said


def test_reproduce_json_keeps_the_timings_of_earlier_calls(tmp_path, monkeypatch):
    import papermill

    from am3f.app.reproduce import reproduce

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: None)  # the bookkeeping only
    reproduce(notebooks=["00_walkthrough"], out=tmp_path, show_progress=False)
    reproduce(notebooks=["01_optical_flow"], out=tmp_path, show_progress=False)
    timings = json.loads((tmp_path / "reproduce.json").read_text())["notebooks_s"]
    assert set(timings) == {"00_walkthrough", "01_optical_flow"}
