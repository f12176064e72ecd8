"""Small shared helpers: device choice, seeding, progress bars."""

from __future__ import annotations

import os
import random
import sys
from typing import Iterable, TypeVar

import numpy as np

T = TypeVar("T")


def pick_device(requested: str = "auto") -> "torch.device":  # noqa: F821
    """CUDA when present (or asked for), else CPU."""
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        from .errors import AM3FError

        raise AM3FError(f"device {requested!r} requested but CUDA is not available")
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def progress(iterable: Iterable[T], **kwargs) -> "tqdm":  # noqa: F821
    """A tqdm progress bar on stderr; AM3F_PROGRESS=0 silences every bar (e.g. in batch logs)."""
    from tqdm.auto import tqdm

    if "disable" not in kwargs or not kwargs["disable"]:
        force = os.environ.get("AM3F_PROGRESS")
        if force is not None:
            kwargs["disable"] = force == "0"
        else:
            kwargs.setdefault("disable", False)
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)


def config_from_dict(cls: type[T], d: dict, what: str) -> T:
    """A config dataclass from its JSON form (lists back to tuples); unknown keys are an error."""
    from dataclasses import fields

    from .errors import AM3FError

    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise AM3FError(f"unknown {what} config field(s): {', '.join(sorted(unknown))}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
