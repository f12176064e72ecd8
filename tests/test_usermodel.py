"""Your own model through the harness: file and module forms, the contract check, the recorded source."""

from __future__ import annotations

import json
import sys

import pytest

from am3f.app.cli import main
from am3f.models import user_model as usermodel

MODEL = '''
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, num_classes=3):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, num_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))

    def cam_target_layers(self):
        return [self.bn]


def build(num_classes=3):
    return Tiny(num_classes)


def wrong_shape(num_classes=3):
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, num_classes + 1))


def crashes(num_classes=3):
    class Bad(nn.Module):
        def forward(self, x):
            raise ValueError("boom")
    return Bad()


def not_a_module(num_classes=3):
    return "a string"
'''
LOSO = ["loso", "--epochs", "1", "--folds", "0-1", "--workers", "1", "--device", "cpu"]


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A package `mymodels` with the model file, importable as a module and addressable as a file."""
    pkg = tmp_path / "site" / "mymodels"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "tiny.py").write_text(MODEL)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return pkg


def test_file_and_module_forms_give_identical_predictions(package, tmp_path, capsys):
    file_run, module_run = tmp_path / "file", tmp_path / "module"
    assert main([*LOSO, "--model", f"{package / 'tiny.py'}:build", "--out", str(file_run)]) == 0
    assert main([*LOSO, "--model", "mymodels.tiny:build", "--out", str(module_run)]) == 0
    assert (file_run / "predictions.csv").read_text() == (module_run / "predictions.csv").read_text()
    source = json.loads((file_run / "config.json").read_text())["model_config"]["source"]
    assert source["path"] == str(package / "tiny.py") and len(source["sha256"]) == 64
    assert json.loads((module_run / "config.json").read_text())["model_config"]["source"]["module"] == "mymodels.tiny"
    assert main(["score", str(file_run)]) == 0 and main(["compare", str(file_run), str(module_run)]) == 0
    assert "UF1" in capsys.readouterr().out


@pytest.mark.parametrize("ref,message", [
    ("tiny.py:wrong_shape", "must return logits of shape (N, 3); got (4, 4)"),
    ("tiny.py:crashes", "forward on a (4, 3, 28, 28) batch failed: ValueError: boom"),
    ("tiny.py:not_a_module", "not a torch.nn.Module"),
    ("tiny.py:nothing", "has no function 'nothing'"),
    ("missing.py:build", "no such file"),
    ("mymodels.nowhere:build", "cannot import mymodels.nowhere"),
])
def test_a_broken_model_is_refused_in_one_line_before_training(package, tmp_path, capsys, ref, message):
    ref = str(package / ref) if ".py" in ref else ref
    out = tmp_path / "run"
    assert main([*LOSO, "--model", ref, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_a_run_does_not_resume_with_changed_model_code(package, tmp_path, capsys):
    out, ref = tmp_path / "run", f"{package / 'tiny.py'}:build"
    first = ["loso", "--epochs", "1", "--folds", "0", "--workers", "1", "--device", "cpu"]
    assert main([*first, "--model", ref, "--out", str(out)]) == 0
    (package / "tiny.py").write_text(MODEL + "\n# edited\n")
    assert main([*LOSO, "--model", ref, "--out", str(out)]) == 2
    assert "started with other model code" in capsys.readouterr().err


def test_an_installed_package_registers_a_model_by_entry_point(package, tmp_path, capsys):
    dist = tmp_path / "site" / "mymodels-1.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mymodels\nVersion: 1.2\n")
    (dist / "entry_points.txt").write_text("[am3f.models]\ntiny = mymodels.tiny:build\n")
    usermodel.entry_points.cache_clear()
    try:
        assert main(["models"]) == 0
        assert "tiny" in capsys.readouterr().out
        out = tmp_path / "run"
        assert main([*LOSO, "--model", "tiny", "--out", str(out)]) == 0
        cfg = json.loads((out / "config.json").read_text())["model_config"]
        assert cfg["arch"] == "tiny" and cfg["source"]["version"] == "1.2"
    finally:
        usermodel.entry_points.cache_clear()
        sys.modules.pop("mymodels.tiny", None)


def test_the_same_model_file_anywhere_names_the_same_run(tmp_path):
    from am3f.app.notebook import synthetic_data
    from am3f.protocol import launch as runs

    data = synthetic_data()
    hashes = []
    for folder, text in (("a", MODEL), ("b", MODEL), ("c", MODEL + "\n# edited\n")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "tiny.py").write_text(text)
        hashes.append(runs.config_hash(runs.run_config(data, f"{tmp_path / folder / 'tiny.py'}:build", epochs=1)))
    assert hashes[0] == hashes[1] != hashes[2]  # the content counts, not where the file lies
