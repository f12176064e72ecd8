"""Small shared helpers: device choice, progress bars, atomic file writes, config parsing."""

from __future__ import annotations

import os
import sys
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def pick_device(requested: str = "auto") -> torch.device:  # noqa: F821
    """CUDA when present (or asked for), else CPU."""
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        from am3f.errors import AM3FError

        raise AM3FError(f"device {requested!r} requested but CUDA is not available")
    return torch.device(requested)


PROGRESS_ENV = "AM3F_PROGRESS"  # 0: no progress at all (`--quiet` sets it); 1: a bar even off a terminal
PROGRESS_EVERY_S = 30.0  # off a terminal: at most one progress line this often


def progress_mode() -> str:
    """How long work reports progress: "bar" (a tqdm bar on stderr, when stdout and stderr are both a
    terminal), "lines" (a line on stdout at most every :data:`PROGRESS_EVERY_S` seconds: a notebook, a
    log file, a cluster job) or "off" (``AM3F_PROGRESS=0``, ``--quiet``)."""
    force = os.environ.get(PROGRESS_ENV)
    if force == "0":
        return "off"
    if force == "1" or (sys.stderr.isatty() and sys.stdout.isatty()):
        return "bar"
    return "lines"


def progress(iterable: Iterable[T] | None = None, **kwargs) -> tqdm | ProgressLines:  # noqa: F821
    """A progress report with tqdm's interface (iterate, ``update``, ``set_postfix_str``, ``close``):
    a bar on a terminal, timed lines elsewhere (:func:`progress_mode`); ``disable=True``: nothing."""
    from tqdm.auto import tqdm

    mode = "off" if kwargs.get("disable", False) else progress_mode()
    if mode == "lines":
        return ProgressLines(iterable, **kwargs)
    kwargs["disable"] = mode == "off"
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)


def clock(seconds: float) -> str:
    """Seconds as m:ss or h:mm:ss."""
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d}"


class ProgressLines:
    """tqdm's interface for a reader who is not at a terminal: one line ``desc: n/total unit (note);
    elapsed m:ss, ETA m:ss`` when the work first advances, then at most every ``every_s`` seconds, also
    while nothing advances (a background thread), and a last line at the end when any was printed."""

    disable = False

    def __init__(self, iterable: Iterable | None = None, total: float | None = None, desc: str = "",
                 unit: str = "it", every_s: float | None = None, file=None, **_tqdm_only):
        import threading
        import time

        self.iterable, self.desc, self.unit = iterable, desc, unit
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n, self.note, self.file = 0.0, "", file
        self.every_s = PROGRESS_EVERY_S if every_s is None else every_s
        self.start = self.last = time.monotonic()
        self.printed, self.shown_n = False, None
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        # the thread holds the report weakly: a report dropped without close() ends its thread too
        self.thread = threading.Thread(target=_heartbeat, args=(weakref.ref(self), self.stopped),
                                       name="progress-lines", daemon=True)
        self.thread.start()

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:  # as tqdm does: an exhausted or abandoned loop ends its report
            self.close()

    def update(self, n: float = 1) -> None:
        import time

        with self.lock:
            self.n += n
        if n and (not self.printed or time.monotonic() - self.last >= self.every_s):
            self._print()

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        with self.lock:
            self.note = s

    def line(self) -> str:
        import time

        with self.lock:
            n, total, note = self.n, self.total, self.note
        elapsed = time.monotonic() - self.start
        done = f"{n:g}/{total:g} {self.unit}" if total else f"{n:g} {self.unit}"
        eta = f", ETA {clock(elapsed * (total - n) / n)}" if total and 0 < n < total else ""
        return f"{self.desc}: {done}{f' ({note})' if note else ''}; elapsed {clock(elapsed)}{eta}"

    def _print(self) -> None:
        import time

        self.last, self.printed, self.shown_n = time.monotonic(), True, self.n
        print(self.line(), file=self.file or sys.stdout, flush=True)

    def close(self) -> None:
        if self.stopped.is_set():
            return
        self.stopped.set()
        if self.printed and self.n != self.shown_n:  # the end, unless the last line said it already
            self._print()


def _heartbeat(report: weakref.ref, stopped) -> None:
    """A line of ``report`` whenever it has been quiet for its ``every_s``, until it is closed or dropped."""
    import time

    while True:
        current = report()
        if current is None:
            return
        wait = min(current.every_s, 5.0)
        if time.monotonic() - current.last >= current.every_s:
            current._print()
        del current
        if stopped.wait(wait):
            return


def config_to_dict(cfg: Any, omit_at_default: tuple[str, ...] = ()) -> dict:
    """A config dataclass as a plain dict; the fields in ``omit_at_default`` are left out while they
    have their default value, so that fields added later leave the configs (run directories'
    config.json, cache keys) of everything that does not use them as they read before."""
    from dataclasses import asdict

    d = asdict(cfg)
    defaults = asdict(type(cfg)())
    return {k: v for k, v in d.items() if k not in omit_at_default or v != defaults[k]}


def config_from_dict(cls: type[T], d: dict, what: str) -> T:
    """A config dataclass from its JSON form (lists back to tuples); unknown keys are an error."""
    from dataclasses import fields

    from am3f.errors import AM3FError

    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise AM3FError(f"unknown {what} config field(s): {', '.join(sorted(unknown))}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary name beside ``path``, then rename it into place.

    A killed process never leaves half a file under the final name, and concurrent writers of the
    same content (processes sharing a run directory) cannot interleave. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_move(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Move a finished file to ``dst`` in one step (same filesystem): readers see it whole or not at all."""
    os.replace(src, dst)


def publish_dir(tmp: Path, final: Path) -> Path:
    """Rename a completely written temporary folder to ``final``: readers see all of it or nothing.
    When another process published ``final`` first, its copy is kept and ``tmp`` is left to the caller."""
    try:
        os.replace(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
    return final


def available_bytes(device: str = "cpu") -> int:
    """Memory this process may still use: free GPU memory on CUDA; on the CPU the kernel's
    MemAvailable, lowered to a cgroup's remaining limit where one is set."""
    if str(device).startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    free = []
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        free.append(int(info["MemAvailable"].split()[0]) * 1024)
    except (OSError, KeyError, ValueError):
        free.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            free.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(free)
