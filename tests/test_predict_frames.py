"""`am3f predict --onset --apex` gives the same answer as predicting the flow image `am3f flow` writes."""

import json

import pytest

from am3f.app.cli import main
from am3f.flow.synth import default_synthetic_root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    assert main(["train", "--data", str(default_synthetic_root()), "--out", str(path), "--epochs", "2",
                 "--device", "cpu"]) == 0
    return path


def test_frames_and_flow_image_give_the_same_prediction(checkpoint, tmp_path, capsys):
    frames = default_synthetic_root() / "frames"
    onset, apex = frames / "synth01_c001_onset.png", frames / "synth01_c001_apex.png"
    flow_png = tmp_path / "flow.png"
    assert main(["flow", str(onset), str(apex), "--out", str(flow_png), "--no-face-detect"]) == 0
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(checkpoint), "--json", str(flow_png)]) == 0
    from_image = json.loads(capsys.readouterr().out)[0]
    assert main(["predict", "--checkpoint", str(checkpoint), "--json", "--onset", str(onset),
                 "--apex", str(apex), "--no-face-detect"]) == 0
    from_frames = json.loads(capsys.readouterr().out)[0]
    assert from_frames["probs"] == pytest.approx(from_image["probs"], abs=1e-6)
    assert abs(sum(from_frames["probs"].values()) - 1) < 1e-4


def test_predict_needs_some_input(checkpoint, capsys):
    assert main(["predict", "--checkpoint", str(checkpoint)]) == 2
    assert "--onset" in capsys.readouterr().err


def test_predict_reads_the_npz_that_am3f_flow_writes(checkpoint, tmp_path, capsys):
    frames = default_synthetic_root() / "frames"
    onset, apex = frames / "synth01_c001_onset.png", frames / "synth01_c001_apex.png"
    assert main(["flow", str(onset), str(apex), "--out", str(tmp_path / "f.npz"), "--no-face-detect"]) == 0
    assert main(["flow", str(onset), str(apex), "--out", str(tmp_path / "f.png"), "--no-face-detect"]) == 0
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(checkpoint), "--json", str(tmp_path / "f.npz"),
                 str(tmp_path / "f.png")]) == 0
    from_npz, from_png = json.loads(capsys.readouterr().out)
    # the .npz is turned into the same 8-bit min-max image that `am3f flow --out X.png` writes
    assert from_npz["probs"] == pytest.approx(from_png["probs"], abs=1e-6)


def test_a_file_that_is_not_a_checkpoint_is_one_line(tmp_path, capsys):
    bogus = tmp_path / "README.md"
    bogus.write_text("# not a model\n")
    assert main(["predict", "--checkpoint", str(bogus), "x.png"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(bogus) in err and "am3f train" in err
