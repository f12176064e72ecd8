"""Leave-one-subject-out engine: one fold per subject, resumable, shardable, on every core or on a
Dask cluster; results go to a run directory (:mod:`am3f.protocol.run_folder`).

Honest protocol: a fold runner gets the training subjects for fitting and the held-out subject only
to predict at the end of its fixed schedule. Per-epoch test scores may be *recorded* to measure how
much epoch-picking would inflate results; nothing here ever selects by them.

A fold runner is a :class:`FoldRunner`: the base owns what the engine calls (``groups``,
``fold_epochs``, ``recipes``, ``run_group``), and each runner is a small piece on it: one that trains a
group of folds in one batched computation overrides ``groups`` and ``run_group``
(:class:`am3f.protocol.fold_runner.TrainRunner`); one that handles a fold at a time overrides ``run_fold``
only (a plain function ``fn(train, test, *, seed, fold)`` is wrapped as such a runner). How the work is
executed (workers, a scheduler, the device, threads, progress) is one :class:`Execution` value: it never
changes a fold's result. Groups are fixed by the data and the runner's configuration, so a fold's
result does not depend on ``workers``, ``--folds`` shards or the scheduler. A group is trained whole
even when a ``--folds`` shard asks for some of its folds only: the folds it did not ask for are kept
in ``RUN/spare/`` (:data:`SPARE_DIR`), and a later shard that asks for them takes them from there
instead of training the group again, so shards never cost more than one run of their union. Three
ways to execute them, all writing the same run directory from this process:

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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

from am3f.data.dataset import FlowDataset
from am3f.errors import AM3FError
from am3f.protocol.folds import check_fold, fold_names, split_fold
from am3f.protocol.run_folder import (
    FoldOutput,
    dataset_info,
    fold_stem,
    merge_run,
    prepare_run_dir,
    record_data,
    write_fold,
)
from am3f.utils import atomic_move, progress

__all__ = ["DEFAULT_EXECUTION", "QUIET", "Execution", "FoldOutput", "FoldRunner", "as_runner", "dataset_info",
           "run_loso", "start_workers_early", "usable_cores"]


class FoldRunner:
    """What the engine asks of a fold runner. The defaults describe a runner that handles one fold at
    a time and trains no recipe: a subclass overrides ``run_fold``, or ``groups`` and ``run_group`` to
    train several folds in one computation (then ``fold_epochs`` and ``recipes`` say what it trains)."""

    def groups(self, data: FlowDataset, folds: Sequence[int] | None = None) -> list[list[int]]:
        """The groups its folds (all, or ``folds``) are computed in; a group's folds are computed together."""
        return [[k] for k in (range(len(fold_names(data))) if folds is None else folds)]

    def fold_epochs(self, data: FlowDataset, fold: int) -> int:
        """Training epochs of fold ``fold`` (the unit of progress reports)."""
        return 1

    def recipes(self) -> list[tuple[object, object]]:
        """Every (model config, recipe) its folds train with, for the memory planner (none: nothing to plan)."""
        return []

    def run_group(self, data: FlowDataset, folds: Sequence[int], *, seed: int) -> list[FoldOutput]:
        """The outputs of the folds of one group (from :meth:`groups`), in order."""
        return [self.run_fold(*split_fold(data, k), seed=seed, fold=k) for k in folds]

    def run_fold(self, train: FlowDataset, test: FlowDataset, *, seed: int, fold: int) -> FoldOutput:
        """One fold: fit on ``train`` (the training subjects), then predict ``test`` (the held-out one) once."""
        raise NotImplementedError(f"{type(self).__name__} overrides neither run_fold nor run_group")


class FunctionRunner(FoldRunner):
    """A plain function ``fn(train, test, *, seed, fold) -> FoldOutput`` as a one-fold-at-a-time runner."""

    def __init__(self, fn: Callable[..., FoldOutput]):
        self.fn = fn

    def run_fold(self, train: FlowDataset, test: FlowDataset, *, seed: int, fold: int) -> FoldOutput:
        return self.fn(train, test, seed=seed, fold=fold)


def as_runner(runner: FoldRunner | Callable[..., FoldOutput]) -> FoldRunner:
    """``runner`` as a :class:`FoldRunner` (a plain function is wrapped); anything else refused in one line."""
    if isinstance(runner, FoldRunner):
        return runner
    if callable(runner):
        return FunctionRunner(runner)
    raise AM3FError(f"a fold runner is a FoldRunner or a function (train, test, *, seed, fold), not {runner!r}")


@dataclass(frozen=True)
class Execution:
    """How a run's work is executed; never what it computes (a fold's result is the same for every value).

    ``workers``: local worker processes (1: this process); ``scheduler``: the address of a Dask
    distributed scheduler to run on instead; ``device``: where models train; ``threads``: torch threads
    per fit in this process; ``show_progress``: epoch progress (a bar on a terminal, else a line at most
    every ~30 s); ``say``: where, with ``show_progress``, a run says what its folder already held and
    what it trains now (None: nowhere, for callers whose output must not depend on what ran before)."""

    workers: int = 1
    scheduler: str | None = None
    device: str = "cpu"
    threads: int = 1
    show_progress: bool = True
    say: Callable[[str], None] | None = print

    def but(self, **changes) -> Execution:
        """A copy with ``changes``."""
        return replace(self, **changes)


DEFAULT_EXECUTION = Execution()  # in this process, progress shown
QUIET = Execution(show_progress=False, say=None)  # in this process, nothing printed (tests, a tuning's inner runs)


def usable_cores() -> int:
    """CPU cores this process may run on (the default number of workers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# ----------------------------------------------------------------------------- one group of folds
def run_group(runner: FoldRunner, data: FlowDataset, seed: int,
              folds: Sequence[int]) -> list[tuple[int, FoldOutput, float]]:
    """(fold, output, wall seconds per fold) for every fold of one group, run by ``runner``."""
    t0 = time.perf_counter()
    outputs = runner.run_group(data, list(folds), seed=seed)
    wall = (time.perf_counter() - t0) / len(folds)
    return [(k, o, wall) for k, o in zip(folds, outputs)]


_WORKER_DATA: FlowDataset | None = None  # the dataset, sent once to each local worker process
_WORKER_EPOCHS = None  # a queue to the parent: (task index, epoch, epochs) after every epoch (progress)


def _init_worker(data: FlowDataset, parent: int, epochs_queue=None) -> None:
    import torch

    global _WORKER_DATA, _WORKER_EPOCHS
    _WORKER_DATA, _WORKER_EPOCHS = data, epochs_queue
    torch.set_num_threads(1)  # N single-threaded processes: no OpenMP spin-waits between them
    keep_freed_memory()
    exit_with_parent(parent)


def keep_freed_memory() -> bool:
    """Make this process's C allocator (glibc's malloc) keep freed blocks of up to 32 MiB for reuse instead
    of handing them back to the system. A training step allocates and frees the same activation maps (15 MB
    each for STSTNet at batch 256) every step; by default glibc returns many of them to the system and the
    next step takes them back page by page, zero-filled: 10-20 % of a worker's time in the kernel (page
    faults), more when two workers do it at once. Allocation only: no number changes. For the engine's
    worker processes, which end with their LOSO command; False where the C library has no ``mallopt``."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows): nothing to set
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    return bool(mallopt(m_mmap_threshold, 32 * 2**20)) and bool(mallopt(m_trim_threshold, 2**30))


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


def _reporting_epochs(on_epoch):
    """A context in which every finished training epoch calls ``on_epoch(epoch, epochs)`` (None: nothing)."""
    from contextlib import nullcontext

    if on_epoch is None:
        return nullcontext()
    from am3f.training.fit import reporting_epochs

    return reporting_epochs(on_epoch)


def _worker_task(runner, seed: int, folds: Sequence[int], index: int):
    queue = _WORKER_EPOCHS
    with _reporting_epochs(None if queue is None else lambda e, n: queue.put((index, e, n))):
        return run_group(runner, _WORKER_DATA, seed, folds)


def _dask_task(runner, data: FlowDataset, seed: int, folds: Sequence[int]):
    import torch

    torch.set_num_threads(1)
    return run_group(runner, data, seed, folds)


Task = tuple[int, list[int]]  # (seed, folds of one group)


def _execute(runner, data: FlowDataset, tasks: list[Task], workers: int, scheduler: str | None,
             on_epoch=None) -> Iterator[tuple[int, list[tuple[int, FoldOutput, float]]]]:
    """Yield (task index, results) as tasks finish, on the chosen executor. ``on_epoch(index, epoch,
    epochs)``: called (in this process) after every training epoch of a task, for progress reports; a
    Dask cluster reports finished tasks only."""
    if scheduler:
        yield from _execute_dask(runner, data, tasks, scheduler)
        return
    if workers <= 1 or len(tasks) <= 1:
        for i, task in enumerate(tasks):
            with _reporting_epochs(None if on_epoch is None else lambda e, n, i=i: on_epoch(i, e, n)):
                results = run_group(runner, data, *task)
            yield i, results
        return
    context = _start_method()
    epochs_queue = context.Queue() if on_epoch is not None else None
    listener = _listen(epochs_queue, on_epoch) if epochs_queue is not None else None
    try:
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context,
                                 initializer=_init_worker, initargs=(data, os.getpid(), epochs_queue)) as pool:
            futures = {pool.submit(_worker_task, runner, *task, i): i for i, task in enumerate(tasks)}
            try:
                for fut in as_completed(futures):
                    yield futures[fut], fut.result()
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    finally:
        if listener is not None:
            epochs_queue.put(None)
            listener.join(timeout=5)


def _listen(queue, on_epoch) -> threading.Thread:
    """A thread of this process passing the workers' epoch reports to ``on_epoch`` until it gets None."""
    def drain() -> None:
        for message in iter(queue.get, None):
            on_epoch(*message)

    thread = threading.Thread(target=drain, name="loso-epochs", daemon=True)
    thread.start()
    return thread


# What every local worker imports before its first group: started once in the fork server, not per worker.
# Not torch._dynamo (1.4 s on a 2-core machine): the recipe's optimizers (am3f.training.optim) never import it.
WORKER_PRELOAD = ["am3f.protocol.worker_preload"]
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
        futures = {client.submit(_dask_task, runner, shared, *task, pure=False): i for i, task in enumerate(tasks)}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


# ----------------------------------------------------------------------------- the run
SPARE_DIR = "spare"  # RUN/spare/folds/: folds trained with an asked-for group but not asked for (yet)


def _fold_done(out: Path, seed: int, fold: int) -> bool:
    return (out / "folds" / f"{fold_stem(seed, fold)}.json").exists()


def _spare_stem(out: Path, seed: int, fold: int) -> Path:
    return out / SPARE_DIR / "folds" / fold_stem(seed, fold)


def take_spares(out: Path, wanted: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Move the spare folds among ``wanted`` (seed, fold) into ``RUN/folds/`` (their metadata JSON
    last: its presence marks a fold done); returns those now done. A fold's result depends only on the
    configuration, the seed and the fold, so a fold trained with its group by an earlier shard is the
    fold this shard would train."""
    taken = set()
    for seed, fold in sorted(wanted):
        spare = _spare_stem(out, seed, fold)
        if not Path(f"{spare}.json").exists():
            continue
        target = out / "folds" / fold_stem(seed, fold)
        try:
            for suffix in (".csv", ".npz", ".json"):
                if Path(f"{spare}{suffix}").exists():
                    atomic_move(f"{spare}{suffix}", f"{target}{suffix}")
        except FileNotFoundError:  # another shard moved it at the same moment
            pass
        if _fold_done(out, seed, fold):
            taken.add((seed, fold))
    return taken


def _keep_spare(out: Path, data: FlowDataset, names: list[str], seed: int, fold: int, result: FoldOutput,
                wall: float, device: str) -> bool:
    """Keep a fold its group trained though it was not asked for (False: not kept, e.g. its scores
    are not finite: the shard that asks for it trains it and says so)."""
    if _fold_done(out, seed, fold) or Path(f"{_spare_stem(out, seed, fold)}.json").exists():
        return False
    train, test = split_fold(data, fold)
    try:
        write_fold(out / SPARE_DIR, data, test, result, seed=seed, fold=fold, subject=names[fold],
                   n_train=len(train), wall=wall, device=device)
    except AM3FError:
        return False
    return True


class GroupProgress:
    """Progress of the groups of a LOSO run in epochs (:func:`am3f.utils.progress`: a bar on a terminal,
    else a line at most every ~30 s): which group is at which epoch, elapsed time and ETA."""

    def __init__(self, tasks: list[Task], epochs: list[int], show: bool):
        self.tasks, self.epochs = tasks, epochs
        self.done = [0.0] * len(tasks)  # epochs done per task
        self.finished = 0
        self.lock = threading.Lock()
        self.bar = progress(total=sum(epochs), desc="LOSO", unit="epoch", disable=not show)

    def _where(self, i: int) -> str:
        seed, folds = self.tasks[i]
        return f"seed {seed}, group {i + 1}/{len(self.tasks)} of {len(folds)} fold(s)"

    def _advance(self, i: int, epochs_done: float, note: str) -> None:
        with self.lock:
            gain = max(0.0, min(epochs_done, self.epochs[i]) - self.done[i])
            self.done[i] += gain
            self.bar.set_postfix_str(note, refresh=False)
            self.bar.update(gain)

    def epoch(self, i: int, epoch: int, epochs: int) -> None:
        """Epoch ``epoch`` of ``epochs`` of a fit of task ``i`` is done (a fit with members runs several
        fits; the group's progress never goes back)."""
        self._advance(i, self.epochs[i] * epoch / max(1, epochs), f"{self._where(i)}: epoch {epoch}/{epochs}")

    def finish(self, i: int) -> None:
        self.finished += 1
        self._advance(i, self.epochs[i], f"{self._where(i)} done; {self.finished} of {len(self.tasks)} group(s)")

    def close(self) -> None:
        self.bar.close()


def run_loso(data: FlowDataset, runner: FoldRunner | Callable[..., FoldOutput], out: str | os.PathLike, *,
             seeds: Sequence[int] = (0,), folds: Sequence[int] | None = None, config: dict | None = None,
             execution: Execution = DEFAULT_EXECUTION) -> Path:
    """Run (or resume) the LOSO folds ``folds`` x ``seeds`` into ``out``; finished folds are skipped.

    ``execution``: where and how (:class:`Execution`). Returns the run directory; ``predictions.csv``
    and ``run.json`` merge every fold finished so far (from this process or others sharing the
    directory). Folds of a trained group that were not asked for are kept in ``RUN/spare/`` and taken
    from there by a later call that asks for them (module docstring). With ``execution.show_progress``
    it also says (``execution.say``) what the folder already held and what the groups add.
    """
    runner = as_runner(runner)
    workers, scheduler, device, show_progress = (execution.workers, execution.scheduler, execution.device,
                                                 execution.show_progress)
    out = Path(out)
    names = fold_names(data)  # what each fold holds out: subjects, or source datasets (am3f.protocol.folds)
    fold_ids = list(range(len(names))) if folds is None else list(folds)
    config = dict(config or {})
    config.setdefault("dataset", dataset_info(data))
    config = prepare_run_dir(out, config)
    record_data(out, data)

    todo = {(s, k) for s in seeds for k in fold_ids if not _fold_done(out, s, k)}
    skipped = len(seeds) * len(fold_ids) - len(todo)
    taken = take_spares(out, todo)
    todo -= taken
    say = execution.say if show_progress and execution.say is not None else (lambda _: None)
    if skipped or taken:
        say(f"resuming {out}: {skipped} fold(s) already done, {len(todo) + len(taken)} to run"
              + (f"; {len(taken)} of them taken from {out / SPARE_DIR}, trained with their group by an earlier "
                 f"--folds shard (the same result as training them now)" if taken else ""))
    for _, k in sorted(todo):
        check_fold(data, k)
    groups = runner.groups(data)
    # a group is computed whole (its folds' numbers depend on it); the folds not asked for are kept as spares
    tasks = [(s, list(g)) for s in seeds for g in groups if any((s, k) in todo for k in g)]
    extra = sum(1 for s, g in tasks for k in g if (s, k) not in todo and not _fold_done(out, s, k)
                and not Path(f"{_spare_stem(out, s, k)}.json").exists())
    if tasks:
        say(f"training {len(todo)} fold(s) in {len(tasks)} group(s)"
              + (f"; the group(s) also hold {extra} fold(s) not asked for, kept in {out / SPARE_DIR} for a "
                 f"later --folds shard" if extra else ""))
    epochs = [int(runner.fold_epochs(data, fold_ids_of_task[0])) for _, fold_ids_of_task in tasks]
    report = GroupProgress(tasks, epochs, show_progress and bool(tasks))
    try:
        for i, results in _execute(runner, data, tasks, workers, scheduler,
                                   report.epoch if show_progress else None):
            seed = tasks[i][0]
            for k, result, wall in results:
                if (seed, k) not in todo:
                    _keep_spare(out, data, names, seed, k, result, wall, device)
                    continue
                train, test = split_fold(data, k)
                write_fold(out, data, test, result, seed=seed, fold=k, subject=names[k], n_train=len(train),
                           wall=wall, device=device)
            report.finish(i)
    finally:
        report.close()
    merge_run(out)
    return out
