"""What a new user meets in the first hour: one-line errors, quiet output, help everywhere, no real
data read unless asked for."""

import subprocess
import sys

import pytest

from am3f.app import reproduce
from am3f.app.cli import build_parser, main

from conftest import write_fake_composite


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    return err


def test_python_dash_m_am3f_is_the_command():
    proc = subprocess.run([sys.executable, "-m", "am3f", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "reproduce" in proc.stdout and "loso" in proc.stdout


def test_every_option_has_help_and_states_its_default():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert p.description, f"`am3f {name}` has no description"
        for action in p._actions:
            if action.dest == "help":
                continue
            assert action.help, f"am3f {name} {action.option_strings or action.dest}: no help text"
            if action.option_strings and action.default not in (None, False, [], "") and action.required is False:
                assert "default" in action.help, f"am3f {name} {action.option_strings}: default not stated"


def test_score_of_a_missing_folder_says_it_does_not_exist(tmp_path, capsys):
    assert main(["score", str(tmp_path / "nowhere")]) == 2
    _one_line_error(capsys, "does not exist", "nowhere")


def test_score_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["score", str(tmp_path)]) == 2
    _one_line_error(capsys, "not a run directory", str(tmp_path))


def test_am3f_data_variable_is_named_when_its_folder_is_missing(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("AM3F_DATA", str(tmp_path / "nowhere"))
    assert main(["loso", "--out", str(tmp_path / "run"), "--epochs", "1"]) == 2
    _one_line_error(capsys, "nowhere", "$AM3F_DATA")


def test_reproduce_checks_data_before_any_notebook_starts(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "001.jpg").write_bytes(b"\xff\xd8\xff")
    out = tmp_path / "out"
    assert main(["reproduce", "--data", str(frames), "--out", str(out)]) == 2
    _one_line_error(capsys, str(frames), "am3f extract")
    assert not out.exists(), "a failed input check must not leave a half-made output folder"


def test_reproduce_reads_real_reference_material_only_when_asked(tmp_path):
    assert reproduce.check_inputs("", None) == ("", "")
    data = write_fake_composite(tmp_path / "shared" / "megc2019-composite", {"s1": [0, 1, 2], "s2": [2, 1, 0]})
    assert reproduce.check_inputs(str(data), None) == (str(data.resolve()), "")
    (tmp_path / "shared" / "ststnet-reference").mkdir()
    # the folder above an explicitly given data set counts as asked for
    assert reproduce.check_inputs(str(data), None) == (str(data.resolve()), str((tmp_path / "shared").resolve()))
    with pytest.raises(Exception, match="needs --data"):
        reproduce.check_inputs("", str(tmp_path / "shared"))
    params = reproduce.notebook_parameters("03_results_tables", "quick", "", tmp_path)
    assert params["shared_dir"] == "" and params["data_root"] == ""


def test_notebook_setup_never_looks_for_shared_data_by_itself(monkeypatch, tmp_path):
    from am3f.app.notebook import setup

    monkeypatch.delenv("AM3F_DATA", raising=False)
    ctx = setup(figures_dir=str(tmp_path / "f"), runs_dir=str(tmp_path / "r"), quiet=True)
    assert ctx.synthetic and ctx.shared_dir is None


def test_list_style_seeds_from_papermill():
    from am3f.protocol.launch import parse_seeds

    for given in ("[0, 1, 2]", "0 1 2", "0,1,2", [0, 1, 2]):
        assert parse_seeds(given) == [0, 1, 2]
    assert parse_seeds(3) == [3]
    with pytest.raises(Exception, match="expected integers"):
        parse_seeds("[a, b]")


def test_progress_bars_only_on_a_terminal(monkeypatch):
    from am3f.utils import ProgressLines, progress

    monkeypatch.delenv("AM3F_PROGRESS", raising=False)
    assert isinstance(progress(range(3)), ProgressLines)  # pytest's captured streams are no terminal: timed lines
    monkeypatch.setenv("AM3F_PROGRESS", "1")
    assert not isinstance(progress(range(3)), ProgressLines) and not progress(range(3)).disable
    monkeypatch.setenv("AM3F_PROGRESS", "0")
    assert progress(range(3)).disable
