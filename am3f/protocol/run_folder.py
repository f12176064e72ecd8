"""The run directory: what a LOSO run writes, and reading it back.

A run directory looks like::

    RUN/config.json                 what was run (written first; a rerun must match it)
    RUN/folds/s<seed>_f<k>.csv      one finished fold: its test samples' predictions and scores
    RUN/folds/s<seed>_f<k>.json     that fold's metadata (written last: its presence = fold done)
    RUN/folds/s<seed>_f<k>.npz      optional per-epoch test scores (for the protocol audit only)
    RUN/predictions.csv             all finished folds merged, one row per (seed, test sample)
    RUN/run.json                    config + package version, git commit, device, per-fold wall times

Every write is atomic (temp file + rename), so processes sharing a directory (``--folds`` shards,
workers, a cluster) and killed runs never leave half a file. Tables and figures are regenerated
from these files (:func:`load_run`) without retraining.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from am3f import __version__
from am3f.data.dataset import FlowDataset
from am3f.errors import AM3FError
from am3f.utils import atomic_write, atomic_write_text


@dataclass
class FoldOutput:
    """What a fold runner returns: class probabilities for the held-out samples."""

    scores: np.ndarray  # (n_test, n_classes)
    epoch_scores: np.ndarray | None = None  # (n_epochs, n_test, n_classes), audit only
    info: dict | None = None


def dataset_info(data: FlowDataset) -> dict:
    """What a run's config.json records about its data (and, for the cross-database split, how it is
    folded; for a single-database run, which databases were kept: each recorded only then, so composite
    LOSO runs' configurations, and so their folders' names, read as before)."""
    info = {"name": data.name, "root": str(data.root) if data.root else None, "synthetic": data.synthetic,
            "n_samples": len(data), "n_subjects": len(data.subject_ids)}
    if data.only_datasets:  # the single-database protocol (am3f.data.dataset.select_datasets); recorded only then
        info["datasets"] = list(data.only_datasets)
    if data.fold_by != "subject":
        from am3f.protocol.folds import fold_names

        info.update(split=data.fold_by, n_folds=len(fold_names(data)))
    return info


def expected_folds(config: dict) -> int | None:
    """How many folds a seed of the run has: one per subject (LOSO), or ``n_folds`` of its split."""
    dataset = config.get("dataset", {})
    return dataset.get("n_folds", dataset.get("n_subjects"))


def fold_stem(seed: int, fold: int) -> str:
    return f"s{seed}_f{fold:03d}"


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    # once per process: the code a process runs is the code it imported
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def prepare_run_dir(out: Path, config: dict) -> dict:
    """Create ``out`` and write ``config.json``, or check that an existing one matches ``config``."""
    # compare in JSON form: tuples in a config read back as lists
    config = json.loads(json.dumps(config))
    make_dir(out)
    make_dir(out / "folds", out)
    cfg_path = out / "config.json"
    if cfg_path.exists():
        old = read_json(cfg_path, "the run's configuration")
        if old != config:
            diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            raise AM3FError(f"{cfg_path}: this run directory was started with a different configuration "
                            f"(differs in: {', '.join(diff)}); use a new --out directory")
    else:
        try:
            atomic_write_text(cfg_path, json.dumps(config, indent=2, sort_keys=True))
        except OSError as exc:
            raise AM3FError(f"--out {out}: cannot write into it ({exc.strerror})") from None
    return config


def make_dir(path: Path, out: Path | None = None) -> Path:
    """``mkdir -p path`` for an output folder ``out`` (default ``path``) a user named: a file in the
    way or a folder without write permission is one line naming ``out``, not a traceback."""
    out = path if out is None else out
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise AM3FError(f"--out {out}: a file is in the way (an output folder is needed)") from None
    except NotADirectoryError:
        raise AM3FError(f"--out {out}: a part of this path is a file, not a folder") from None
    except OSError as exc:
        raise AM3FError(f"--out {out}: cannot create it ({exc.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise AM3FError(f"--out {out}: no permission to write into it")
    return path


def read_json(path: Path, what: str) -> dict:
    """A JSON file of a run or tuning folder; unreadable or damaged: one line naming it and ``what`` it holds."""
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise AM3FError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except ValueError as exc:
        raise AM3FError(f"{path}: {what} is damaged (not JSON: {exc})") from None


def write_fold(out: Path, data: FlowDataset, test: FlowDataset, result: FoldOutput, *, seed: int, fold: int,
               subject: str, n_train: int, wall: float, device: str) -> None:
    """Write one finished fold: predictions CSV, optional per-epoch scores, then the metadata JSON
    whose presence marks the fold as done."""
    scores = np.asarray(result.scores, dtype=np.float64)
    if scores.shape != (len(test), len(data.class_names)):
        raise AssertionError(f"fold runner returned scores of shape {scores.shape}, "
                             f"expected {(len(test), len(data.class_names))}")
    if not np.isfinite(scores).all():
        model = _model_name(out)
        raise AM3FError(f"{model}: non-finite class scores (NaN or inf) for fold {fold} ({subject}), seed {seed}, "
                        f"after its last epoch; nothing was written for it")
    stem = out / "folds" / fold_stem(seed, fold)
    frame = pd.DataFrame({
        "sample_id": test.sample_ids, "dataset": test.datasets, "subject": test.subjects,
        "label": test.labels, "pred": scores.argmax(axis=1), "fold": fold, "seed": seed,
    })
    for c, name in enumerate(data.class_names):
        frame[f"score_{name}"] = scores[:, c]
    if result.epoch_scores is not None:
        epochs = np.asarray(result.epoch_scores, dtype=np.float32)

        def _save(path: Path) -> None:
            with open(path, "wb") as fh:
                np.savez_compressed(fh, epoch_scores=epochs, sample_ids=test.sample_ids)

        atomic_write(Path(f"{stem}.npz"), _save)
    atomic_write_text(Path(f"{stem}.csv"), frame.to_csv(index=False, float_format="%.6f"))
    meta = {"seed": seed, "fold": fold, "subject": subject, "n_train": n_train, "n_test": len(test),
            "wall_s": round(wall, 4), "device": device, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "am3f_version": __version__, "git_commit": git_commit()}
    if result.info:
        meta["info"] = result.info
    atomic_write_text(Path(f"{stem}.json"), json.dumps(meta, indent=2))


def record_data(out: Path, data: FlowDataset) -> None:
    """``OUT/data.json``: the fingerprint of the data a run trains on (:func:`am3f.data.dataset.data_fingerprint`),
    written once; run.json repeats it (not config.json, whose content names the run's folder)."""
    from am3f.data.dataset import data_fingerprint

    path = Path(out) / "data.json"
    fingerprint = data_fingerprint(data)
    if path.is_file():
        refuse_other_data(out, read_json(path, "the fingerprint of the run's data").get("fingerprint"), fingerprint)
    else:
        atomic_write_text(path, json.dumps({"fingerprint": fingerprint, "n_samples": len(data),
                                            "synthetic": data.synthetic}, indent=2))


def refuse_other_data(out: Path, recorded: str | None, fingerprint: str) -> None:
    """A run (or tuning) continues only on the data it started with: same labels, same images."""
    if recorded and recorded != fingerprint:
        raise AM3FError(f"{out}: made on other data (labels or images differ: fingerprint {recorded[:12]}, this data "
                        f"{fingerprint[:12]}); its results would mix two datasets: use a new --out")


def _model_name(out: Path) -> str:
    """The model a run directory trains, for messages."""
    try:
        config = json.loads((Path(out) / "config.json").read_text())
    except (OSError, ValueError):
        return "model"
    return str(config.get("variant") or config.get("model") or "model")


def merge_run(out: str | os.PathLike) -> pd.DataFrame:
    """Combine every finished fold (any seed, any process) into predictions.csv and run.json."""
    out = Path(out)
    cfg_path = out / "config.json"
    if not cfg_path.is_file():
        raise AM3FError(f"{out}: not a run directory (no config.json)")
    config = read_json(cfg_path, "the run's configuration")
    metas = [_fold_meta(path) for path in sorted((out / "folds").glob("s*_f*.json"))]
    if not metas:
        raise AM3FError(f"{out}: no finished folds yet")
    frames = [_fold_predictions(out, m) for m in metas]
    preds = pd.concat(frames, ignore_index=True).sort_values(["seed", "fold", "sample_id"], kind="stable")
    atomic_write_text(out / "predictions.csv", preds.to_csv(index=False, float_format="%.6f"))

    n_subjects = expected_folds(config)
    seeds = sorted({m["seed"] for m in metas})
    per_seed = {s: sorted(m["fold"] for m in metas if m["seed"] == s) for s in seeds}
    complete = n_subjects is not None and all(len(f) == n_subjects for f in per_seed.values())
    # provenance of the code that trained the folds, not of whoever merges them later
    previous = json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else {}
    commits = sorted({str(m["git_commit"]) for m in metas if m.get("git_commit")})
    versions = sorted({m["am3f_version"] for m in metas if m.get("am3f_version")})
    run = {
        "config": config,
        "am3f_version": ", ".join(versions) or previous.get("am3f_version", __version__),
        "git_commit": ", ".join(commits) or previous.get("git_commit"),
        "python": platform.python_version(),
        "torch": _torch_version(),
        "host": platform.node(),
        "devices": sorted({m["device"] for m in metas}),
        "complete": complete,
        "folds_done": {str(s): len(f) for s, f in per_seed.items()},
        "data_fingerprint": (json.loads((out / "data.json").read_text())["fingerprint"]
                             if (out / "data.json").is_file() else None),
        # training seconds summed over a seed's folds: the work of one core (N parallel workers finish in ~1/N)
        "core_s_per_seed": {str(s): round(sum(m["wall_s"] for m in metas if m["seed"] == s), 2) for s in seeds},
        "folds": [{k: m.get(k) for k in ("seed", "fold", "subject", "n_train", "n_test", "wall_s", "device",
                                         "git_commit")} for m in metas],
    }
    spares = [json.loads(p.read_text()) for p in sorted((out / "spare" / "folds").glob("s*_f*.json"))]
    # trained with an asked-for group by a --folds shard, not in predictions until a shard asks (am3f.protocol.engine)
    if spares:
        run["spare_folds"] = {"folds_per_seed": {str(s): sum(m["seed"] == s for m in spares) for s in
                                                 sorted({m["seed"] for m in spares})},
                              "core_s": round(sum(m["wall_s"] for m in spares), 2)}
    atomic_write_text(out / "run.json", json.dumps(run, indent=2))
    return preds


_DAMAGED = "delete folds/{stem}.* and rerun the `am3f loso` that made the run to recompute it"


def _fold_meta(path: Path) -> dict:
    """A finished fold's metadata; damaged: one line naming the fold."""
    try:
        meta = json.loads(path.read_text())
        if not isinstance(meta, dict) or not all(k in meta for k in ("seed", "fold", "n_test")):
            raise ValueError("seed, fold or n_test missing")
    except (OSError, ValueError) as exc:
        raise AM3FError(f"{path.parent.parent}: fold file folds/{path.name} is damaged ({exc}); "
                        + _DAMAGED.format(stem=path.stem)) from None
    return meta


def _fold_predictions(out: Path, meta: dict) -> pd.DataFrame:
    """A finished fold's predictions, checked against its metadata: all ``n_test`` rows, every class
    score a number (a cut, corrupt or missing file is named, never scored as a subset)."""
    stem = fold_stem(meta["seed"], meta["fold"])
    path = out / "folds" / f"{stem}.csv"
    fix = _DAMAGED.format(stem=stem)
    try:
        frame = pd.read_csv(path, dtype={"subject": str})
    except FileNotFoundError:
        raise AM3FError(f"{out}: fold {stem} is marked done but folds/{stem}.csv is missing; {fix}") from None
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AM3FError(f"{out}: folds/{stem}.csv is damaged ({reason}); {fix}") from None
    scores = [c for c in frame.columns if c.startswith("score_")]
    needed = {"sample_id", "label", "pred", "seed", "fold"}
    if not scores or not needed <= set(frame.columns):
        raise AM3FError(f"{out}: folds/{stem}.csv is damaged (columns missing); {fix}")
    if len(frame) != meta["n_test"]:
        raise AM3FError(f"{out}: folds/{stem}.csv has {len(frame)} row(s), its fold tested {meta['n_test']}: "
                        f"the file was cut or changed; {fix}")
    values = frame[scores].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(values).all():
        raise AM3FError(f"{out}: folds/{stem}.csv has empty or non-finite class scores (a model that produced NaN, "
                        f"or a damaged file); {fix}")
    return frame


def _torch_version() -> str | None:
    try:
        import torch

        return torch.__version__
    except ImportError:  # pragma: no cover
        return None


# ----------------------------------------------------------------------------- reading runs back
@dataclass
class RunResult:
    """A finished (or partial) LOSO run as read back from disk."""

    path: Path
    predictions: pd.DataFrame
    config: dict
    info: dict
    label: str = ""

    @property
    def synthetic(self) -> bool:
        return bool(self.config.get("dataset", {}).get("synthetic"))

    @property
    def seeds(self) -> list[int]:
        return sorted(int(s) for s in self.predictions["seed"].unique())

    @property
    def complete(self) -> bool:
        return bool(self.info.get("complete"))

    def describe(self) -> str:
        tag = " [SYNTHETIC]" if self.synthetic else ""
        done = self.info.get("folds_done", {})
        n_sub = expected_folds(self.config)
        state = "complete" if self.complete else f"PARTIAL: folds done per seed {done} of {n_sub}"
        return f"{self.label or self.path.name}{tag}: seeds {self.seeds}, {state}"


def load_run(run_dir: str | os.PathLike, label: str | None = None) -> RunResult:
    """Read a run directory (merging finished folds first, so partial runs work too), or a run's committed
    evidence (:func:`save_evidence`: no fold files, read as it is), so `am3f compare` takes either."""
    path = Path(run_dir)
    if not (path / "folds").is_dir() and all((path / n).is_file() for n in EVIDENCE_FILES):
        preds = pd.read_csv(path / "predictions.csv", dtype={"subject": str})
    else:
        preds = merge_run(path)
    config = read_json(path / "config.json", "the run's configuration")
    info = read_json(path / "run.json", "the run's record")
    if label is None:
        label = config.get("variant") or config.get("model") or path.name
        if ":" in label:  # a user's model: its file and factory, not the folder it lay in (am3f.models.user_model)
            from am3f.models.user_model import short_name

            label = short_name(label)
    return RunResult(path=path, predictions=preds, config=config, info=info, label=str(label))


def as_runs(runs: RunResult | str | os.PathLike | Mapping[str, RunResult | str | os.PathLike]
             | Sequence[RunResult | str | os.PathLike]) -> list[RunResult]:
    """Runs given as a directory, a :class:`RunResult`, a list of them or a {label: run} mapping."""
    if isinstance(runs, RunResult):
        return [runs]
    if isinstance(runs, (str, os.PathLike)):
        return [load_run(runs)]
    if isinstance(runs, Mapping):
        return [r if isinstance(r, RunResult) else load_run(r, label=k) for k, r in runs.items()]
    return [r if isinstance(r, RunResult) else load_run(r) for r in runs]


def load_epoch_scores(run_dir: str | os.PathLike) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """{(seed, fold): (epoch_scores (n_epochs, n_test, n_classes), sample_ids)} of every recorded fold."""
    out = {}
    for path in sorted((Path(run_dir) / "folds").glob("s*_f*.npz")):
        seed, fold = path.stem[1:].split("_f")
        with np.load(path, allow_pickle=False) as z:
            out[(int(seed), int(fold))] = (z["epoch_scores"], z["sample_ids"].astype(str))
    return out


# ----------------------------------------------------------------------------- committed evidence
EVIDENCE_FILES = ("config.json", "run.json", "predictions.csv")


def save_evidence(run: RunResult, dest: str | os.PathLike) -> Path:
    """Copy what a committed real-data table is computed from (``config.json``, ``run.json``,
    ``predictions.csv``: ids, subjects, labels, predictions and class scores, no image content) into
    ``dest``, so the table and any re-analysis regenerate from the repository alone
    (:func:`load_evidence`)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in EVIDENCE_FILES:
        atomic_write_text(dest / name, (run.path / name).read_text())
    return dest


def load_evidence(path: str | os.PathLike, label: str | None = None) -> RunResult:
    """A run as committed by :func:`save_evidence` (no fold files to merge): read as it is."""
    path = Path(path)
    missing = [n for n in EVIDENCE_FILES if not (path / n).is_file()]
    if missing:
        raise AM3FError(f"{path}: not a committed run ({', '.join(missing)} missing)")
    config = json.loads((path / "config.json").read_text())
    preds = pd.read_csv(path / "predictions.csv", dtype={"subject": str})
    info = json.loads((path / "run.json").read_text())
    return RunResult(path=path, predictions=preds, config=config, info=info,
                     label=str(label or config.get("variant") or config.get("model") or path.name))
