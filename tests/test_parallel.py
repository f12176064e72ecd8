"""One LOSO run, whatever executes it: in this process, on local worker processes, or on a real Dask
cluster (scheduler + worker started on 127.0.0.1) — byte-identical predictions."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from am3f.app.cli import main
from am3f.flow.synth import default_synthetic_root

SMALL = ["--epochs", "2", "--folds", "0-5", "--fold-group", "3", "--seeds", "0", "--device", "cpu"]


def _loso(out: Path, *extra: str) -> str:
    assert main(["loso", "--data", str(default_synthetic_root()), "--out", str(out), *SMALL, *extra]) == 0
    return (out / "predictions.csv").read_text()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> str:
    return _loso(tmp_path_factory.mktemp("ref") / "run", "--workers", "1")


def test_same_command_twice_gives_the_same_predictions(reference, tmp_path):
    assert _loso(tmp_path / "again", "--workers", "1") == reference


def test_two_worker_processes_give_the_same_predictions(reference, tmp_path):
    assert _loso(tmp_path / "w2", "--workers", "2") == reference


def test_shards_of_a_group_give_the_same_predictions(reference, tmp_path):
    """Folds 0-1 and 2-5 in two commands sharing one --out: group {0, 1, 2} is split between them."""
    base = ["loso", "--data", str(default_synthetic_root()), "--out", str(tmp_path / "sh"), "--epochs", "2",
            "--fold-group", "3", "--seeds", "0", "--device", "cpu", "--workers", "1"]
    assert main(base + ["--folds", "0-1"]) == 0
    assert main(base + ["--folds", "2-5"]) == 0
    assert (tmp_path / "sh" / "predictions.csv").read_text() == reference


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_dask_cluster_gives_the_same_predictions(reference, tmp_path):
    pytest.importorskip("distributed")
    dask = shutil.which("dask", path=str(Path(sys.executable).parent)) or shutil.which("dask")
    if dask is None:
        pytest.skip("the `dask` command is not installed")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "AM3F_PROGRESS": "0"}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env, "cwd": tmp_path}
    scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--no-dashboard"], **quiet)
    worker = subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--nworkers", "1", "--host",
                               "127.0.0.1", "--no-dashboard", "--local-directory", str(tmp_path / "dw")], **quiet)
    try:
        from distributed import Client

        deadline = time.time() + 90
        while True:  # until the worker has joined the scheduler
            try:
                with Client(address, timeout="5s") as client:
                    if client.scheduler_info()["workers"]:
                        break
            except OSError:
                pass
            assert time.time() < deadline, "the local Dask cluster did not start"
            time.sleep(1)
        out = tmp_path / "dask-run"
        assert _loso(out, "--scheduler", address) == reference
    finally:
        for proc in (worker, scheduler):
            proc.terminate()
            proc.wait(timeout=30)


def test_unreachable_scheduler_is_one_line(tmp_path, capsys):
    pytest.importorskip("distributed")
    port = _free_port()
    code = main(["loso", "--data", str(default_synthetic_root()), "--out", str(tmp_path / "x"), *SMALL,
                 "--scheduler", f"tcp://127.0.0.1:{port}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "Dask scheduler" in err


def test_every_local_worker_keeps_freed_memory_for_reuse():
    """The engine's workers tell glibc's malloc to keep freed activation maps (engine.keep_freed_memory: no page
    faults refilling them every step; allocation only, no number changes). In a child process: it changes the
    allocator of the process that calls it."""
    import subprocess
    import sys

    code = ("import os, am3f.protocol.engine as engine\n"
            "print(engine.keep_freed_memory())\n"
            "calls = []\n"
            "engine.keep_freed_memory = lambda: calls.append(1)\n"
            "engine._init_worker(None, os.getpid())\n"
            "print(calls)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    took, called = done.stdout.split("\n")[:2]
    assert called == "[1]"  # the worker initializer sets it
    if sys.platform.startswith("linux"):
        assert took == "True"  # glibc took both settings
