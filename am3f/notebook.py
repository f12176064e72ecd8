"""What every notebook starts with: :func:`setup` (data, output folders, the SYNTHETIC banner) and
:func:`ensure_run` (find, resume or train the LOSO run the notebook shows), plus fold models for
Grad-CAM and a few teaching helpers.

Notebooks 03-08 need a LOSO run. They take ``run_dir`` when given; otherwise :func:`ensure_run`
finds or trains one in a folder named by a hash of its configuration, so a notebook run on its own
with the same parameters as 02 reuses 02's run instead of training again.

Real (licence-restricted) data is read only when asked for: ``data_root`` (or ``$AM3F_DATA``) for
the flow images, ``shared_dir`` for the reference material (published STSTNet weights, real
onset/apex frames). Empty means the embedded synthetic set and no reference checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import AM3FError
from .utils import atomic_write

OUT_ENV = "AM3F_OUT"
REFERENCE_SUBDIRS = ("ststnet-reference", "real-onset-apex")


# ----------------------------------------------------------------------------- paths
def repo_root() -> Path | None:
    """The source checkout this package runs from (editable install), or None."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir() else None


def default_out_dir() -> Path:
    """$AM3F_OUT, else ``out/`` of the checkout (git-ignored), else ./out."""
    env = os.environ.get(OUT_ENV)
    if env:
        return Path(env).expanduser()
    root = repo_root()
    return (root / "out") if root is not None else Path("out").resolve()


def reference_dir(shared_dir: str | os.PathLike | None) -> Path | None:
    """The folder of real reference material (``ststnet-reference/``, ``real-onset-apex/``) when
    one is given explicitly and holds any of it; None otherwise (the notebooks then skip those parts)."""
    if not shared_dir:
        return None
    path = Path(shared_dir).expanduser()
    if not path.is_dir():
        raise AM3FError(f"{path}: shared_dir does not exist (the folder holding ststnet-reference/ "
                        f"and real-onset-apex/; leave it empty to skip the real-data checks)")
    return path if any((path / d).is_dir() for d in REFERENCE_SUBDIRS) else None


# ----------------------------------------------------------------------------- notebook setup
@dataclass
class Context:
    """What a notebook works with: the data, where runs and figures go, and whether it is synthetic."""

    data: object  # FlowDataset
    figures_dir: Path
    runs_dir: Path
    shared_dir: Path | None
    synthetic: bool
    params: dict = field(default_factory=dict)

    def banner(self) -> str:
        if self.synthetic:
            return ("*** SYNTHETIC DATA: every number and figure below comes from the generated synthetic set, "
                    "not from real micro-expressions ***")
        return "real data: " + self.data.describe()


def setup(data_root: str = "", figures_dir: str = "", runs_dir: str = "", shared_dir: str = "",
          quiet: bool = False, synthetic_only: bool = False, **params) -> Context:
    """Load the dataset (the embedded synthetic set when ``data_root`` and ``$AM3F_DATA`` are empty,
    or always with ``synthetic_only``), resolve output folders (defaults under the git-ignored
    ``out/``), print the SYNTHETIC banner; the first cell of every notebook."""
    import matplotlib

    from .data import load_dataset

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
    data = synthetic_data() if synthetic_only else load_dataset(data_root or None)
    out = default_out_dir()
    ctx = Context(data=data, figures_dir=Path(figures_dir or out / "figures"), runs_dir=Path(runs_dir or out / "runs"),
                  shared_dir=reference_dir(shared_dir), synthetic=bool(data.synthetic), params=params)
    ctx.figures_dir.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(ctx.banner())
        print(data.describe())
        print(f"figures -> {ctx.figures_dir}\nruns    -> {ctx.runs_dir}")
    return ctx


def synthetic_data():
    """The embedded synthetic set itself, whatever $AM3F_DATA says (its frames and true flow are
    what the teaching figures draw: never a real face)."""
    from .data import load_flow_dataset
    from .synth import default_synthetic_root

    return load_flow_dataset(default_synthetic_root(), name="synthetic")


# ----------------------------------------------------------------------------- runs
def parse_seeds(seeds: Sequence[int] | int | str) -> list[int]:
    """Seeds as a notebook parameter may arrive: 0, [0, 1], "0 1", "0,1" or "[0, 1, 2]" (papermill -p)."""
    if isinstance(seeds, int):
        return [seeds]
    if isinstance(seeds, str):
        parts = re.sub(r"[\[\],]", " ", seeds).split()
        try:
            return [int(s) for s in parts]
        except ValueError:
            raise AM3FError(f"seeds {seeds!r}: expected integers, e.g. [0, 1, 2] or \"0 1 2\"") from None
    return [int(s) for s in seeds]


def run_config(data, model: str = "am3f", variant: str = "full", epochs: int = 0) -> dict:
    """The configuration stored in config.json of a notebook-made run: what `am3f loso` stores for the
    same model, variant and epochs (variant, full model/train configs, parameter count, dataset)."""
    from .train import loso_config
    from .zoo import ARCHITECTURES, get_variant

    if model not in ARCHITECTURES:
        raise AM3FError(f"unknown model {model!r} (known: {', '.join(ARCHITECTURES)})")
    # `full` is the notebooks' default variant: for another model, that model's own variant. Any other
    # variant names its architecture itself (the ablation list holds `ststnet` beside AM3F's variants).
    if model != "am3f" and variant == "full":
        variant = ARCHITECTURES[model].default_variant
    get_variant(variant)  # a one-line error for an unknown name
    return loso_config(data, variant, epochs=epochs or None)


# execution settings that do not change what is computed (the results), left out of the hash
EXECUTION_KEYS = {"train_config": ("threads",), "dataset": ("root",)}


def config_hash(config: dict) -> str:
    # the dataset root differs between machines/caches for the same data; the content counts
    stable = dict(config)
    for section, keys in EXECUTION_KEYS.items():
        if isinstance(stable.get(section), dict):
            stable[section] = {k: v for k, v in stable[section].items() if k not in keys}
    return hashlib.sha1(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:8]


def ensure_run(data, run_dir: str | os.PathLike = "", *, runs_dir: str | os.PathLike | None = None,
               model: str = "am3f", variant: str = "full", seeds: Sequence[int] | int | str = (0,),
               folds: str | Sequence[int] | None = "", epochs: int = 0, device: str = "auto",
               workers: int = 0, scheduler: str = "", show_progress: bool = True) -> Path:
    """A LOSO run of ``variant`` on ``data``: reused when done, resumed when partial, else trained.

    ``run_dir`` empty: ``runs_dir/<variant>-<config hash>`` (so notebooks with equal parameters
    share one run). ``folds``: '' = every subject, or a range like '0-1' (quick looks only: a partial
    run is not a LOSO result). ``epochs`` 0 = the declared schedule of the variant. ``workers`` 0 =
    every usable core; ``scheduler``: a Dask scheduler address to run the folds on instead.
    """
    from .data import parse_index_ranges
    from .loso import run_loso, usable_cores
    from .train import TrainConfig, TrainRunner
    from .utils import pick_device
    from .zoo import model_config_from_dict

    config = run_config(data, model, variant, epochs)
    if run_dir:
        path = Path(run_dir)
        if (path / "config.json").is_file():
            old = json.loads((path / "config.json").read_text())
            if config_hash(config) != config_hash(old):
                # made elsewhere (am3f loso, evaluate-weights, other parameters): use it as it is
                if show_progress:
                    print(f"using the existing run {path} as it is (its configuration differs from these "
                          f"notebook parameters: variant {old.get('variant', old.get('model'))!r})")
                return path
            config = old
    else:
        base = Path(runs_dir) if runs_dir else default_out_dir() / "runs"
        path = base / f"{config['variant']}-{config_hash(config)}"
        if (path / "config.json").is_file():
            # same experiment, perhaps other execution settings (threads, data location): resume it as made
            config = json.loads((path / "config.json").read_text())
    fold_ids = parse_index_ranges(folds if folds not in (None, "") else None, len(data.subject_ids))
    dev = pick_device(device)
    runner = TrainRunner(model_config_from_dict(config["model_config"]), TrainConfig.from_dict(config["train_config"]),
                         device=dev, record_epochs=True)
    run_loso(data, runner, path, seeds=parse_seeds(seeds), folds=fold_ids, config=config, device=str(dev),
             workers=1 if dev.type == "cuda" else (workers or usable_cores()), scheduler=scheduler or None,
             show_progress=show_progress)
    return path


def fold_model(run_dir: str | os.PathLike, data, subject: str, seed: int = 0, device: str = "cpu", cache: bool = True):
    """The model of one LOSO fold (trained without ``subject``; the first one when the run averages
    several per fold), for Grad-CAM on held-out samples.

    Runs store predictions, not weights: the fold's whole group (:func:`am3f.train.fold_groups`) is
    re-trained from the run's config and seed, which gives exactly the run's models, and every model
    of the group is cached as ``RUN/models/s<seed>_<subject>.pt`` so later calls load it.
    Returns the model in eval mode.
    """
    import numpy as np
    import torch

    from .train import TrainConfig, fit_group, fold_groups
    from .zoo import build_model, model_config_from_dict

    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    if "model_config" not in config:
        raise AM3FError(f"{run_dir}: run has no model/train configuration to re-fit from")
    model_cfg = model_config_from_dict(config["model_config"])
    train_cfg = TrainConfig.from_dict(config["train_config"])
    path = run_dir / "models" / f"s{seed}_{subject}.pt"
    if not (cache and path.is_file()):
        fold = data.subject_ids.index(subject)
        group = next(g for g in fold_groups(data, train_cfg) if fold in g)
        subjects = [data.subject_ids[k] for k in group]
        # the first model of each fold is seeded with seed * 1000 (am3f.train.TrainRunner.run_group)
        models, _ = fit_group(data, [np.flatnonzero(data.subjects != s) for s in subjects], model_cfg, train_cfg,
                              seed=seed * 1000, device=device)
        if not cache:
            return models[subjects.index(subject)]
        for s, m in zip(subjects, models):
            state = {k: v.detach().cpu() for k, v in m.state_dict().items()}
            atomic_write(run_dir / "models" / f"s{seed}_{s}.pt", lambda p, st=state: torch.save(st, p))
    model = build_model(model_cfg, image_size=data.image_size[0])
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(device).eval()


def fit_without(data, subject: str, variant: str = "full", epochs: int = 0, seed: int = 0, device: str = "cpu"):
    """A model of ``variant`` fitted on every subject but ``subject`` (so it can be shown held-out
    samples honestly); ``epochs`` 0 = the declared schedule. Returns the model in eval mode."""
    from .loso import split_fold
    from .train import fit, resolve_variant

    model_cfg, train_cfg = resolve_variant(variant, epochs=epochs or None)
    train, _ = split_fold(data, subject)
    model, _ = fit(train, model_cfg, train_cfg, seed=seed * 1000, device=device)
    return model.eval()


def evaluate_published_ststnet(shared_dir: str | os.PathLike, out: str | os.PathLike) -> Path | None:
    """A run of the published STSTNet weights in ``shared_dir`` (made once, then reused), or None
    when the folder does not hold them."""
    from .data import load_flow_dataset
    from .ststnet import evaluate_published_weights

    shared = Path(shared_dir)
    weights, data = shared / "ststnet-reference" / "weights", shared / "megc2019-composite"
    if not weights.is_dir() or not data.is_dir():
        return None
    out = Path(out)
    if not (out / "predictions.csv").is_file():
        evaluate_published_weights(weights, load_flow_dataset(data), out, device="cpu", show_progress=False)
    return out
