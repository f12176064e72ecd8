"""Small shared helpers: device choice, progress bars, atomic file writes, config parsing."""

from __future__ import annotations

import os
import sys
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
        from .errors import AM3FError

        raise AM3FError(f"device {requested!r} requested but CUDA is not available")
    return torch.device(requested)


def progress(iterable: Iterable[T] | None = None, **kwargs) -> tqdm:  # noqa: F821
    """A tqdm progress bar on stderr, shown only when stderr is a terminal (so redirected logs,
    papermill and nbval stay clean). AM3F_PROGRESS=1 forces bars on, AM3F_PROGRESS=0 off."""
    from tqdm.auto import tqdm

    if not kwargs.get("disable", False):
        force = os.environ.get("AM3F_PROGRESS")
        kwargs["disable"] = (force == "0") if force in ("0", "1") else not sys.stderr.isatty()
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)


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

    from .errors import AM3FError

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


def publish_dir(tmp: Path, final: Path) -> Path:
    """Rename a completely written temporary folder to ``final``: readers see all of it or nothing.
    When another process published ``final`` first, its copy is kept and ``tmp`` is left to the caller."""
    try:
        os.replace(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
    return final
