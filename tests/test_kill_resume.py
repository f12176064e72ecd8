"""Kill a real `am3f loso` process part-way, rerun the same command, get the same predictions."""

import os
import signal
import subprocess
import sys
import time

import pytest

from am3f.flow.synth import default_synthetic_root


@pytest.fixture(scope="module")
def synthetic_root():
    return default_synthetic_root()


def _loso(out, data, folds="0-9"):
    return [sys.executable, "-m", "am3f.app.cli", "loso", "--model", "ststnet", "--data", str(data),
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


def test_a_worker_ends_when_its_parent_is_killed():
    """Workers of a LOSO command killed outright must not train on as orphans
    (am3f.protocol.engine.exit_with_parent)."""
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    watch = (f"import time; from am3f.protocol.engine import exit_with_parent; "
             f"exit_with_parent({parent.pid}, 0.2); time.sleep(300)")
    worker = subprocess.Popen([sys.executable, "-c", watch])
    try:
        time.sleep(3)
        assert worker.poll() is None  # alive while its parent is
        parent.kill()
        parent.wait()
        assert worker.wait(timeout=60) == 1
    finally:
        for p in (parent, worker):
            if p.poll() is None:
                p.kill()
