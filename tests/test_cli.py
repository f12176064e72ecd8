import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from am3f.app.cli import build_parser, main
from am3f.models.peers.ststnet import STSTNet


@pytest.fixture
def fake_weights(tmp_path, fake_composite):
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.manual_seed(0)
    for sub in ("sub01", "sub02", "sub03"):
        torch.save(STSTNet().state_dict(), folder / f"{sub}.pth")
    return folder


def _run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_every_command_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"evaluate-weights", "score"} <= set(sub.choices)
    for name, p in sub.choices.items():
        assert p.format_help().strip(), name


def test_evaluate_and_score_on_fake_data(fake_composite, fake_weights, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = _run(["evaluate-weights", "--weights", str(fake_weights), "--data", str(fake_composite),
                         "--out", str(out), "--device", "cpu"], capsys)
    assert code == 0, err
    code, stdout, _ = _run(["score", str(out)], capsys)
    assert code == 0 and "UF1" in stdout and (out / "metrics.json").exists()


@pytest.mark.parametrize("case", ["missing_dir", "missing_image", "corrupt_png", "wrong_size", "grey_png",
                                  "missing_column", "unknown_label", "duplicate_id", "missing_weights"])
def test_bad_input_gives_one_line_error_naming_the_path(case, fake_composite, fake_weights, tmp_path, capsys):
    data, weights = fake_composite, fake_weights
    flows = fake_composite / "flows"
    csv_path = fake_composite / "combined_3_class2_for_optical_flow.csv"
    lines = csv_path.read_text().splitlines()
    expect = {
        "missing_dir": str(tmp_path / "absent"), "missing_image": "sub02_EP01_0 .png",
        "corrupt_png": "sub01_EP00_0 .png", "wrong_size": "sub01_EP00_0 .png", "grey_png": "sub01_EP00_0 .png",
        "missing_column": csv_path.name, "unknown_label": csv_path.name, "duplicate_id": csv_path.name,
        "missing_weights": str(fake_weights),
    }[case]
    if case == "missing_dir":
        data = tmp_path / "absent"
    elif case == "missing_image":
        (flows / "sub02_EP01_0 .png").unlink()
    elif case == "corrupt_png":
        (flows / "sub01_EP00_0 .png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    elif case == "wrong_size":
        Image.fromarray(np.zeros((30, 28, 3), np.uint8)).save(flows / "sub01_EP00_0 .png")
    elif case == "grey_png":
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(flows / "sub01_EP00_0 .png")
    elif case == "missing_column":
        csv_path.write_text("\n".join(line.replace(",label,", ",lbl,") for line in lines) + "\n")
    elif case == "unknown_label":
        parts = lines[1].split(",")
        parts[3] = "5"
        csv_path.write_text("\n".join([lines[0], ",".join(parts)] + lines[2:]) + "\n")
    elif case == "duplicate_id":
        csv_path.write_text("\n".join(lines + [lines[1]]) + "\n")
    elif case == "missing_weights":
        (fake_weights / "sub03.pth").unlink()
        expect = "sub03"
    code, _, err = _run(["evaluate-weights", "--weights", str(weights), "--data", str(data),
                         "--out", str(tmp_path / "run")], capsys)
    assert code != 0
    err_lines = [line for line in err.splitlines() if line.strip()]
    assert len(err_lines) == 1, err
    assert err_lines[0].startswith("am3f evaluate-weights: error:")
    assert expect in err_lines[0]


def test_score_on_something_that_is_not_a_run(tmp_path, capsys):
    code, _, err = _run(["score", str(tmp_path)], capsys)
    assert code == 2 and "not a run directory" in err and str(tmp_path) in err


def test_console_script_exits_nonzero_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "am3f.app.cli", "score", str(tmp_path / "nowhere")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
