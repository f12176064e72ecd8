"""`am3f reproduce`, the notebooks' shared setup, and the notebooks' structure (not their execution:
CI executes them through nbval)."""

import json
import re
from pathlib import Path

import nbformat
import pytest

from am3f.app import reproduce
from am3f.app.cli import main
from am3f.data.dataset import load_flow_dataset
from am3f.errors import AM3FError
from am3f.protocol import launch as runs

from conftest import REPO, write_fake_composite

NOTEBOOK_DIR = REPO / "notebooks"


@pytest.mark.parametrize("name", reproduce.NOTEBOOKS)
def test_notebook_structure(name):
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name}: exactly one cell tagged 'parameters'"
    src = tagged[0].source
    # the walkthrough always follows a synthetic sample and trains one small model: no run parameters
    # notebooks of one run take run_dir; 09 and 10 make one run per method (no run_dir); 10 needs no reference
    required = ("figures_dir =",) if name == "00_walkthrough" else (
        "data_root = \"\"", "figures_dir =", "epochs =", "seeds =", "folds =")
    required += ("run_dir =",) * (name not in ("00_walkthrough", "09_leaderboard", "10_your_model"))
    required += ("shared_dir = \"\"",) * (name not in ("00_walkthrough", "10_your_model"))
    assert "unused" not in src, f"{name}: a parameter the notebook does not use"
    for p in required:
        assert p in src, f"{name}: parameter {p!r} missing"
    # papermill must parse every assignment (an '=' inside a comment makes it skip the line silently)
    assigned = set(re.findall(r"^(\w+)\s*=", src, re.M))
    assert assigned <= reproduce._declared_parameters(NOTEBOOK_DIR / f"{name}.ipynb"), name
    for cell in nb.cells:
        if cell.cell_type == "code":
            # outputs are committed (am3f reproduce --in-place) and checked in test_notebook_outputs.py
            # notebooks call the package; they never define functions of their own except tiny caches
            # (a %%writefile cell writes the user's own model file: notebook 10 is about exactly that)
            assert ("\ndef " not in "\n" + cell.source or "lru_cache" in cell.source
                    or cell.source.startswith("%%writefile"))
            assert "figures/" not in cell.source.replace("out/figures", "")


def test_profile_parameters_only_declared_names():
    out = Path("/tmp/x")
    for name in reproduce.NOTEBOOKS:
        declared = reproduce._declared_parameters(NOTEBOOK_DIR / f"{name}.ipynb")
        params = reproduce.notebook_parameters(name, "quick", "", out)
        assert {"data_root", "figures_dir", "runs_dir", "epochs", "seeds", "folds"} <= set(params)
        assert params["figures_dir"] == str(out / "figures")
        if name != "00_walkthrough":
            assert {"data_root", "figures_dir", "runs_dir", "epochs", "seeds", "folds"} <= declared
            # notebook 10 compares your model with ours on the data alone: no reference material
            assert ("shared_dir" in declared) == (name != "10_your_model")
    full = reproduce.notebook_parameters("04_ablations", "full", "", out)
    # the main model and every ablation variant on five seeds, every fold, the declared schedule
    assert full["folds"] == "" and full["seeds"] == [0, 1, 2, 3, 4] and full["epochs"] == 0
    assert set(full["variants"]) == set(reproduce.ABLATION_VARIANTS_FULL) and "ststnet" in full["variants"]
    assert reproduce.notebook_parameters("02_train_loso", "full", "", out)["seeds"] == [0, 1, 2, 3, 4]
    board = reproduce.notebook_parameters("09_leaderboard", "leaderboard", "", out)
    # one seed per row (the tuned rows' 60-epoch recipes dominate); every tuned architecture but the full HTNet
    assert board["seeds"] == [0]
    assert {"full", "dualinception", "rcn-authors", "ststnet-authors"} <= set(board["variants"])
    assert set(board["tuned"]) == {"am3f", "ststnet", "rcn", "dualinception", "offapexnet", "htnet-small"}
    # --seeds: every row's seeds, the profile's per-row seeds dropped
    more = reproduce.notebook_parameters("09_leaderboard", "leaderboard", "", out, seeds=[0, 1, 2])
    assert more["seeds"] == [0, 1, 2] and more["variant_seeds"] == {}
    assert reproduce.PROFILES["leaderboard"]["seeds"] == [0]  # the profile itself is left as declared
    assert reproduce.PROFILES["leaderboard"]["notebooks"] == ["09_leaderboard"]
    assert "09_leaderboard" not in reproduce.PROFILES["full"]["notebooks"]
    with pytest.raises(Exception, match="unknown profile"):
        reproduce.notebook_parameters("02_train_loso", "huge", "", out)


def test_default_outputs_go_to_ignored_out_folder(monkeypatch):
    monkeypatch.delenv(runs.OUT_ENV, raising=False)
    assert runs.default_out_dir() == REPO / "out"
    ignored = (REPO / ".gitignore").read_text().split()
    assert "/out/" in ignored or "out/" in ignored
    monkeypatch.setenv(runs.OUT_ENV, "/tmp/somewhere")
    assert runs.default_out_dir() == Path("/tmp/somewhere")


@pytest.fixture
def tiny_data(tmp_path):
    root = write_fake_composite(tmp_path / "tiny",
                                {"sub01": [0, 1, 2, 0], "sub02": [0, 1, 2, 1], "sub03": [2, 1, 0, 0]})
    return load_flow_dataset(root)


def test_ensure_run_reuses_by_configuration(tiny_data, tmp_path):
    kw = dict(runs_dir=tmp_path / "runs", seeds=[0], folds="0", epochs=1, device="cpu", show_progress=False)
    first = runs.ensure_run(tiny_data, "", **kw)
    stamp = (first / "folds" / "s0_f000.json").stat().st_mtime_ns
    again = runs.ensure_run(tiny_data, "", **kw)
    assert again == first and (first / "folds" / "s0_f000.json").stat().st_mtime_ns == stamp
    assert first.name.startswith("full-")
    other = runs.ensure_run(tiny_data, "", **{**kw, "epochs": 2})
    assert other != first
    config = json.loads((first / "config.json").read_text())
    assert config["variant"] == "full" and config["train_config"]["epochs"] == 1
    # an explicit run_dir is used as given, and extended with more folds
    explicit = runs.ensure_run(tiny_data, first, **{**kw, "folds": "0-1"})
    assert explicit == first and (first / "folds" / "s0_f001.json").exists()
    # a run made with other settings (e.g. by `am3f loso`) is used as it is, never extended
    untouched = runs.ensure_run(tiny_data, other, **{**kw, "folds": "0-2"})
    assert untouched == other and not (other / "folds" / "s0_f002.json").exists()
    # fold models are re-fitted once, then loaded from the run's cache
    model = runs.fold_model(first, tiny_data, tiny_data.subject_ids[0])
    assert (first / "fold-models" / f"s0_{tiny_data.subject_ids[0]}.pt").is_file()
    again_model = runs.fold_model(first, tiny_data, tiny_data.subject_ids[0])
    for a, b in zip(model.state_dict().values(), again_model.state_dict().values()):
        assert (a == b).all()


def test_config_hash_ignores_where_the_data_lives(tiny_data):
    a = runs.run_config(tiny_data, variant="full", epochs=1)
    b = json.loads(json.dumps(a))
    b["dataset"]["root"] = "/elsewhere"
    assert runs.config_hash(a) == runs.config_hash(b)
    assert runs.config_hash(a) != runs.config_hash(runs.run_config(tiny_data, variant="u", epochs=1))


def _tiny_notebook(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell('data_root = ""\nfigures_dir = ""\nruns_dir = ""\n'
                                  'epochs = 9\nseeds = [5]\nfolds = "x"')
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_reproduce_runs_notebooks_in_order_with_profile_parameters(tmp_path, monkeypatch, capfd):
    src = tmp_path / "nbs"
    src.mkdir()
    body = ('import json, pathlib\n'
            'p = pathlib.Path(figures_dir) / "params.jsonl"\n'
            'with open(p, "a") as fh: fh.write(json.dumps({"epochs": epochs, "seeds": seeds, "folds": folds}) + "\\n")')
    for name in ("02_train_loso", "03_results_tables"):
        _tiny_notebook(src / f"{name}.ipynb", body)
    monkeypatch.setattr(reproduce, "notebooks_dir", lambda: src)
    out = tmp_path / "rq"
    rc = main(["reproduce", "--profile", "quick", "--out", str(out),
               "--notebooks", "02_train_loso", "03_results_tables"])
    assert rc == 0
    lines = [json.loads(x) for x in (out / "figures" / "params.jsonl").read_text().splitlines()]
    assert lines == [{"epochs": 2, "seeds": [0], "folds": "0-1"}] * 2
    assert (out / "02_train_loso.ipynb").is_file() and (out / "03_results_tables.ipynb").is_file()
    timings = json.loads((out / "reproduce.json").read_text())
    assert list(timings["notebooks_s"]) == ["02_train_loso", "03_results_tables"]
    printed = capfd.readouterr()  # file-descriptor level: the kernels' own output would land here
    assert str(out / "figures") in printed.out and "SYNTHETIC" in printed.out
    assert "IPKernelApp" not in printed.err and "KeyboardInterrupt" not in printed.err, printed.err


def test_reproduce_reports_a_failing_notebook(tmp_path, monkeypatch, capsys):
    src = tmp_path / "nbs"
    src.mkdir()
    _tiny_notebook(src / "02_train_loso.ipynb", "raise ValueError('boom')")
    monkeypatch.setattr(reproduce, "notebooks_dir", lambda: src)
    rc = main(["reproduce", "--out", str(tmp_path / "rq"), "--notebooks", "02_train_loso"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "02_train_loso failed" in err and "ValueError: boom" in err


def test_reproduce_rejects_unknown_notebook_and_profile(tmp_path, capsys):
    assert main(["reproduce", "--out", str(tmp_path / "rq"), "--notebooks", "99_nope"]) == 2
    assert "99_nope" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["reproduce", "--profile", "huge"])


def test_execution_settings_do_not_split_runs(tiny_data, tmp_path):
    a = runs.run_config(tiny_data, variant="full", epochs=1)
    b = json.loads(json.dumps(a))
    assert "threads" not in a["train_config"]  # an execution setting, not part of the recipe
    b["dataset"]["root"] = "/elsewhere/the/same/data"  # where the data lies is not what was learned from
    assert runs.config_hash(a) == runs.config_hash(b)
    b["train_config"]["lr"] = 123.0
    assert runs.config_hash(a) != runs.config_hash(b)


def test_run_config_resolves_model_and_variant_by_one_rule(tiny_data):
    # a variant names its architecture; a model alone means its default variant; both must agree
    assert runs.run_config(tiny_data, "", "ststnet", epochs=1)["model"] == "ststnet"
    assert runs.run_config(tiny_data, "rcn", "", epochs=1)["variant"] == "rcn"
    assert runs.run_config(tiny_data, epochs=1)["variant"] == "full"
    with pytest.raises(AM3FError, match="variant 'full' is of model 'am3f', not 'rcn'"):
        runs.run_config(tiny_data, "rcn", "full", epochs=1)
    with pytest.raises(AM3FError, match="unknown variant"):
        runs.run_config(tiny_data, "am3f", "nope", epochs=1)
    with pytest.raises(AM3FError, match="unknown model"):
        runs.run_config(tiny_data, "nope", "", epochs=1)
