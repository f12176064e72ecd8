"""Kill a real `am3f loso` process part-way, rerun the same command, get the same predictions."""

import os
import signal
import subprocess
import sys
import time

import pytest

from am3f.synth import default_synthetic_root


@pytest.fixture(scope="module")
def synthetic_root():
    return default_synthetic_root()


def _loso(out, data, folds="0-9"):
    return [sys.executable, "-m", "am3f.cli", "loso", "--model", "ststnet", "--data", str(data),
            "--epochs", "3", "--folds", folds, "--seeds", "0", "--device", "cpu", "--out", str(out),
            "--fold-group", "2", "--workers", "1"]  # groups of two folds: the kill lands between groups


def test_killed_run_resumes_to_identical_predictions(synthetic_root, tmp_path):
    env = {**os.environ, "AM3F_PROGRESS": "0"}
    subprocess.run(_loso(tmp_path / "whole", synthetic_root), check=True, capture_output=True, env=env)

    out = tmp_path / "killed"
    proc = subprocess.Popen(_loso(out, synthetic_root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "folds").glob("*.json"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p.name for p in (out / "folds").glob("*.json")}
    assert 2 <= len(done_before) < 10, "the run should have been killed part-way"

    rerun = subprocess.run(_loso(out, synthetic_root), check=True, capture_output=True, text=True, env=env)
    assert f"{len(done_before)} fold(s) already done" in rerun.stdout
    assert (out / "predictions.csv").read_text() == (tmp_path / "whole" / "predictions.csv").read_text()
