"""The `am3f` program ends quickly (am3f.app.cli.command; the fork server's preload,
am3f.protocol.worker_preload) without losing what a normal exit does: its exit code, its output,
multiprocessing's clean-up; and importing the preload anywhere but in the fork server changes nothing."""

import os
import subprocess
import sys


def _am3f(*args, **kw):
    return subprocess.run([sys.executable, "-m", "am3f", *args], capture_output=True, text=True, **kw)


def test_importing_the_worker_preload_outside_the_fork_server_keeps_the_exit_code():
    done = subprocess.run([sys.executable, "-c", "import sys, am3f.protocol.worker_preload; sys.exit(3)"])
    assert done.returncode == 3


def test_a_loso_command_with_workers_exits_cleanly_with_its_code_and_output(tmp_path):
    done = _am3f("loso", "--variant", "ststnet-authors", "--folds", "0-1", "--epochs", "1", "--workers", "2",
                 "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    assert "predictions written to" in done.stdout  # flushed before the quick exit
    assert "leaked" not in done.stderr and "Traceback" not in done.stderr  # multiprocessing's clean-up ran
    assert (tmp_path / "run" / "predictions.csv").exists()


def test_an_error_still_exits_2_in_one_line(tmp_path):
    done = _am3f("loso", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run"))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "does not exist" in done.stderr


def test_a_reader_that_leaves_early_gets_no_traceback():
    """`am3f variants | head -1`: the pipe closes under the command; it stops quietly, as shell tools do."""
    reader = subprocess.Popen([sys.executable, "-m", "am3f", "variants"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    reader.stdout.close()  # gone before the first line
    err = reader.stderr.read().decode()
    assert reader.wait() == 1 and "Traceback" not in err and "Broken pipe" not in err, err
