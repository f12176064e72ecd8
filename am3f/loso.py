"""Leave-one-subject-out engine: one fold per subject, resumable, shardable, on every core or on a
Dask cluster; results go to a run directory (:mod:`am3f.rundir`).

Honest protocol: a fold runner gets the training subjects for fitting and the held-out subject only
to predict at the end of its fixed schedule. Per-epoch test scores may be *recorded* to measure how
much epoch-picking would inflate results; nothing here ever selects by them.

Work is done in groups of folds: a runner with ``groups(data)`` and ``run_group(data, folds, seed=)``
(:class:`am3f.runner.TrainRunner`) trains a group in one batched computation; any other runner
(``runner(train, test, seed=, fold=)``) runs one fold at a time. Groups are fixed by the data and the
runner's configuration, so a fold's result does not depend on ``workers``, ``--folds`` shards or the
scheduler. Three ways to execute them, all writing the same run directory from this process:

* ``workers=1``: in this process;
* ``workers=N``: N local worker processes, each single-threaded, each sent the dataset once;
* ``scheduler="tcp://HOST:PORT"``: a Dask distributed cluster (the dataset is scattered to the
  workers with the tasks: no shared filesystem needed).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Protocol

from .data import FlowDataset
from .errors import AM3FError
from .folds import check_fold, fold_names, split_fold
from .rundir import FoldOutput, dataset_info, fold_stem, merge_run, prepare_run_dir, record_data, write_fold
from .utils import progress

__all__ = ["FoldOutput", "FoldRunner", "dataset_info", "run_loso", "start_workers_early", "usable_cores"]


class FoldRunner(Protocol):
    def __call__(self, train: FlowDataset, test: FlowDataset, *, seed: int, fold: int) -> FoldOutput: ...


def usable_cores() -> int:
    """CPU cores this process may run on (the default number of workers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# ----------------------------------------------------------------------------- one group of folds
def run_group(runner, data: FlowDataset, seed: int, folds: Sequence[int]) -> list[tuple[int, FoldOutput, float]]:
    """(fold, output, wall seconds) for every fold of one group, run by ``runner``."""
    if hasattr(runner, "run_group"):
        t0 = time.perf_counter()
        outputs = runner.run_group(data, list(folds), seed=seed)
        wall = (time.perf_counter() - t0) / len(folds)
        return [(k, o, wall) for k, o in zip(folds, outputs)]
    results = []
    for k in folds:
        t0 = time.perf_counter()
        out = runner(*split_fold(data, k), seed=seed, fold=k)
        results.append((k, out, time.perf_counter() - t0))
    return results


_WORKER_DATA: FlowDataset | None = None  # the dataset, sent once to each local worker process


def _init_worker(data: FlowDataset, parent: int) -> None:
    import torch

    global _WORKER_DATA
    _WORKER_DATA = data
    torch.set_num_threads(1)  # N single-threaded processes: no OpenMP spin-waits between them
    exit_with_parent(parent)


def exit_with_parent(parent: int, every_s: float = 2.0) -> None:
    """End this process within ``every_s`` seconds of process ``parent`` ending (POSIX; elsewhere
    nothing). A LOSO command killed outright (``kill -9``, a scheduler's time limit, the OOM killer)
    cannot tell its workers to stop, and they would train on, or wait forever on its pipes."""
    if os.name != "posix":
        return

    def watch() -> None:
        while True:
            time.sleep(every_s)
            try:
                os.kill(parent, 0)  # signal 0: only asks whether the process exists
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # it exists, under another user (a reused pid)
                pass

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _worker_task(runner, seed: int, folds: Sequence[int]):
    return run_group(runner, _WORKER_DATA, seed, folds)


def _dask_task(runner, data: FlowDataset, seed: int, folds: Sequence[int]):
    import torch

    torch.set_num_threads(1)
    return run_group(runner, data, seed, folds)


Task = tuple[int, list[int]]  # (seed, folds of one group)


def _execute(runner, data: FlowDataset, tasks: list[Task], workers: int, scheduler: str | None
             ) -> Iterator[tuple[Task, list[tuple[int, FoldOutput, float]]]]:
    """Yield (task, results) as tasks finish, on the chosen executor."""
    if scheduler:
        yield from _execute_dask(runner, data, tasks, scheduler)
        return
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield task, run_group(runner, data, *task)
        return
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=_start_method(),
                             initializer=_init_worker, initargs=(data, os.getpid())) as pool:
        futures = {pool.submit(_worker_task, runner, *task): task for task in tasks}
        try:
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


# What every local worker imports before its first group: started once in the fork server, not per worker.
# torch._dynamo is imported by the first optimizer a process builds (1.4 s on a 2-core machine).
WORKER_PRELOAD = ["am3f.runner", "torch._dynamo"]
_use_fork_server = False  # set by start_workers_early


def _start_method():
    """How local workers start. After :func:`start_workers_early` (``am3f loso`` calls it), a fork
    server: one clean, single-threaded process imports torch and the trainer (``WORKER_PRELOAD``) once,
    then forks each worker from itself in milliseconds, and a forked worker exits without tearing torch
    down (together ~3 s less wall time per command on 2 cores). Otherwise spawn, a fresh interpreter
    per worker: a long-lived process (a notebook kernel) then gets workers with the code as it is now
    on disk for every run, where a fork server would keep the code of its first run. A main program
    without a file (``python - <<EOF``) cannot be re-imported by either: fork then."""
    import multiprocessing

    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file and not os.path.isfile(main_file):
        return multiprocessing.get_context("fork")
    if not _use_fork_server:
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_PRELOAD)
    return context


def start_workers_early(workers: int) -> None:
    """Use a fork server for this process's local workers (see :func:`_start_method`) and start it now,
    in the background, when ``workers`` > 1: it imports torch while this process is still loading
    data, so the workers are ready when the folds are. For short-lived processes (a command, a
    benchmark); where the platform has no fork server, nothing changes."""
    global _use_fork_server
    import multiprocessing

    if workers > 1 and "forkserver" in multiprocessing.get_all_start_methods():
        _use_fork_server = True
        if _start_method().get_start_method() == "forkserver":
            from multiprocessing import forkserver

            forkserver.ensure_running()


def _execute_dask(runner, data: FlowDataset, tasks: list[Task], scheduler: str):
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise AM3FError("--scheduler needs Dask's `distributed` package: pip install 'am3f[cluster]'") from None
    try:
        client = Client(scheduler, timeout="10s")
    except OSError as exc:
        raise AM3FError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    with client:
        shared = client.scatter(data, broadcast=True, hash=False)
        futures = {client.submit(_dask_task, runner, shared, *task, pure=False): task for task in tasks}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


# ----------------------------------------------------------------------------- the run
def run_loso(data: FlowDataset, runner: FoldRunner, out: str | os.PathLike, *, seeds: Sequence[int] = (0,),
             folds: Sequence[int] | None = None, config: dict | None = None, device: str = "cpu",
             workers: int = 1, scheduler: str | None = None, show_progress: bool = True,
             report_resume: bool = True) -> Path:
    """Run (or resume) the LOSO folds ``folds`` x ``seeds`` into ``out``; finished folds are skipped.

    ``workers``: local worker processes (1: this process); ``scheduler``: the address of a Dask
    distributed scheduler instead. Returns the run directory; ``predictions.csv`` and ``run.json``
    merge every fold finished so far (from this process or others sharing the directory).
    ``report_resume``: say how many folds were already done (notebooks turn it off: their output
    must not depend on which notebook made the run).
    """
    out = Path(out)
    names = fold_names(data)  # what each fold holds out: subjects, or source datasets (am3f.folds)
    fold_ids = list(range(len(names))) if folds is None else list(folds)
    config = dict(config or {})
    config.setdefault("dataset", dataset_info(data))
    config = prepare_run_dir(out, config)
    record_data(out, data)

    todo = {(s, k) for s in seeds for k in fold_ids if not (out / "folds" / f"{fold_stem(s, k)}.json").exists()}
    skipped = len(seeds) * len(fold_ids) - len(todo)
    if skipped and show_progress and report_resume:
        print(f"resuming {out}: {skipped} fold(s) already done, {len(todo)} to run")
    for _, k in sorted(todo):
        check_fold(data, k)
    if todo and hasattr(runner, "prepare"):
        runner.prepare()
    groups = runner.groups(data) if hasattr(runner, "groups") else [[k] for k in range(len(names))]
    # a group is computed whole (its folds' numbers depend on it); only the folds asked for are written
    tasks = [(s, list(g)) for s in seeds for g in groups if any((s, k) in todo for k in g)]
    bar = progress(total=len(todo), desc="LOSO folds", unit="fold", disable=not show_progress)
    try:
        for (seed, _), results in _execute(runner, data, tasks, workers, scheduler):
            for k, result, wall in results:
                if (seed, k) not in todo:
                    continue
                train, test = split_fold(data, k)
                write_fold(out, data, test, result, seed=seed, fold=k, subject=names[k], n_train=len(train),
                           wall=wall, device=device)
                bar.update(1)
            bar.set_postfix_str(f"seed {seed}")
    finally:
        bar.close()
    merge_run(out)
    return out
