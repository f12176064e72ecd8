"""Run directories as the CLI, the notebooks and the benchmarks all make them: one
configuration (:func:`run_config`), one name for it (:func:`config_hash`), one way to start or resume
a run (:func:`start_run`, :func:`ensure_run`), and a fold's model again (:func:`fold_model`).

A run's config.json holds everything that decides its results (the variant, the full model and
training configs, the parameter count, the dataset); execution settings (workers, threads, device,
where the data lives) are left out of its hash, so the same experiment finds the same folder on any
machine. Notebooks 02-09 find or train their runs here, so a notebook run on its own with the same
parameters as 02 reuses 02's run instead of training again. A run of STSTNet's published
per-subject weights (:func:`evaluate_published_weights`) is an ordinary run directory too.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from am3f.errors import AM3FError
from am3f.protocol.engine import DEFAULT_EXECUTION, Execution, FoldRunner, run_loso, usable_cores
from am3f.training.recipe import TrainConfig
from am3f.utils import atomic_write

OUT_ENV = "AM3F_OUT"
# execution settings that do not change what is computed, left out of the hash;
# where a user's model file lies (its content counts: the SHA-256 in the same record)
EXECUTION_KEYS = {"dataset": ("root",)}
SOURCE_LOCATION_KEYS = ("path",)


# ----------------------------------------------------------------------------- paths
def repo_root() -> Path | None:
    """The source checkout this package runs from (editable install), or None."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir() else None


def default_out_dir() -> Path:
    """$AM3F_OUT, else ``out/`` of the checkout (git-ignored), else ./out."""
    env = os.environ.get(OUT_ENV)
    if env:
        return Path(env).expanduser()
    root = repo_root()
    return (root / "out") if root is not None else Path("out").resolve()


# ----------------------------------------------------------------------------- configuration
def run_config(data, model: str = "", variant: str = "", recipe: str | os.PathLike = "", **train_overrides) -> dict:
    """The config.json of a LOSO run on ``data`` (as it reads back from JSON) of the variant that
    (``model``, ``variant``) name (:func:`am3f.models.registry.model_variant`), with recipe overrides (None: the
    variant's own). ``recipe``: a recipes.json of ``am3f tune``: the run is cross-fitted (each fold
    trains with the recipe tuned on the half without its subject, :mod:`am3f.protocol.tuning`); its variant is
    the tuning's unless one is named. Everything is validated here, before anything is trained."""
    from am3f.models.registry import build_model, count_parameters, model_variant
    from am3f.protocol.run_folder import dataset_info
    from am3f.training.recipe import resolve_variant

    tuned = _tuned_recipe(recipe, model, variant, train_overrides) if recipe else None
    variant = model_variant(model, variant or (tuned or {}).get("variant"))
    model_cfg, train_cfg = resolve_variant(variant, **train_overrides)
    from am3f.training.fit import ENGINE_REVISION

    config = {"kind": "loso", "engine": ENGINE_REVISION, "model": model_cfg.arch, "variant": variant,
              "model_config": model_cfg.to_dict(),
              "train_config": train_cfg.to_dict(),
              "parameters": count_parameters(build_model(model_cfg, image_size=data.image_size[0])),
              "dataset": dataset_info(data)}
    if tuned:
        from am3f.protocol.tuning import cross_fitted

        if data.fold_by != "subject":
            raise AM3FError("--recipe: cross-fitted recipes need the subject split (a held-out dataset has "
                            "subjects of both tuned halves)")
        config["tuned_recipe"] = {"file": Path(recipe).name, **cross_fitted(tuned, data, train_cfg)}
        # no fold trains the base recipe: where it stood, each half's recipe; the base under its own name
        config["base_train_config"] = config.pop("train_config")
        tuned_on = config["tuned_recipe"]["tuned_on"]
        config["train_config"] = {f"tuned_on_{h}": t["train_config"] for h, t in tuned_on.items()}
    return json.loads(json.dumps(config))


def _tuned_recipe(path, model: str, variant: str, train_overrides: dict) -> dict:
    """The checked recipes.json of ``path`` for a run of (``model``, ``variant``)."""
    from am3f.protocol.tuning import read_recipes

    tuned = read_recipes(path)
    if model and model != tuned.get("model") or variant and variant != tuned.get("variant"):
        raise AM3FError(f"--recipe {path}: tuned for variant {tuned.get('variant')!r} of {tuned.get('model')!r}, "
                        f"not {variant or model!r}")
    _refuse_other_code(path, tuned, variant or model or str(tuned.get("variant")))
    tuned_keys = {k for h in tuned["halves"].values() for k in h["chosen"]}
    clash = sorted(k for k, v in train_overrides.items() if v is not None and k in tuned_keys)
    if clash:
        raise AM3FError(f"--recipe {path} tunes {', '.join(clash)}: do not set {'it' if len(clash) == 1 else 'them'} "
                        f"on the command line too")
    return tuned


def _refuse_other_code(path, tuned: dict, name: str) -> None:
    """A tuning of a user's model is used only with the code it was tuned with (recipes.json's SHA-256)."""
    from am3f.models.user_model import entry_points, is_reference, model_source

    recorded = tuned.get("model_code_sha256")
    ref = entry_points().get(name, name)
    if recorded and is_reference(ref) and model_source(ref).get("sha256") != recorded:
        raise AM3FError(f"--recipe {path}: tuned with other code of {name} (SHA-256 {str(recorded)[:12]}...); "
                        f"tune the model as it is now")


def run_name(variant: str) -> str:
    """A folder name for a variant: itself, or for a user's model its file and factory (``my_model.py_build``)."""
    import re

    return re.sub(r"[^\w.]+", "_", variant.rsplit("/", 1)[-1])


def config_hash(config: dict) -> str:
    # the dataset root differs between machines/caches for the same data; the content counts
    stable = dict(config)
    for section, keys in EXECUTION_KEYS.items():
        if isinstance(stable.get(section), dict):
            stable[section] = {k: v for k, v in stable[section].items() if k not in keys}
    model = stable.get("model_config")
    if isinstance(model, dict) and isinstance(model.get("source"), dict):
        model = {**model, "source": {k: v for k, v in model["source"].items() if k not in SOURCE_LOCATION_KEYS}}
        stable["model_config"] = model
        for key, holder in (("arch", model), ("variant", stable), ("model", stable)):
            if isinstance(holder.get(key), str):
                holder[key] = holder[key].rsplit("/", 1)[-1]  # a model file's name, not its folder
    return hashlib.sha1(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:8]


def runner_of(config: dict, device="cpu", record_epochs: bool = True, threads: int = 1):
    """The LOSO fold runner of a run's config.json: its recipe (:class:`am3f.protocol.fold_runner.TrainRunner`), or
    for a cross-fitted run the two tuned recipes (:class:`am3f.protocol.fold_runner.CrossFittedRunner`).
    ``device`` and ``threads``: where and how its fits run (they do not change the recipe)."""
    from am3f.protocol.fold_runner import CrossFittedRunner, TrainRunner

    model_cfg, train_cfg = recipe_of(config)
    tuned = config.get("tuned_recipe")
    if not tuned:
        return TrainRunner(model_cfg, train_cfg, device=device, record_epochs=record_epochs, threads=threads)
    runners = {h: TrainRunner(model_cfg, TrainConfig.from_dict(t["train_config"]), device=device,
                              record_epochs=record_epochs, threads=threads) for h, t in tuned["tuned_on"].items()}
    return CrossFittedRunner(runners, {h: t["subjects"] for h, t in tuned["tuned_on"].items()})


def recipe_of(config: dict) -> tuple[object, TrainConfig]:
    """(model config, training recipe) of a run's config.json."""
    from am3f.models.registry import model_config_from_dict

    if "model_config" not in config or "train_config" not in config:
        raise AM3FError("run has no model/train configuration to train from (made by evaluate-weights?)")
    base = config.get("base_train_config", config["train_config"])  # a cross-fitted run: its base recipe
    return model_config_from_dict(config["model_config"]), TrainConfig.from_dict(base)


# ----------------------------------------------------------------------------- starting a run
def start_run(data, config: dict, out: str | os.PathLike, *, seeds: Sequence[int] = (0,),
              folds: Sequence[int] | None = None, execution: Execution = DEFAULT_EXECUTION,
              record_epochs: bool = True) -> Path:
    """Train (or resume) the LOSO run of ``config`` (from :func:`run_config`) into ``out`` as ``execution``
    says (:class:`am3f.protocol.engine.Execution`): the one place a run is started, for ``am3f loso`` and
    :func:`ensure_run` alike."""
    _refuse_changed_model(Path(out), config)
    runner = runner_of(config, device=execution.device, record_epochs=record_epochs, threads=execution.threads)
    if not execution.scheduler:  # a Dask cluster's memory is its own: there the group cap alone applies
        execution = execution.but(workers=memory_workers(runner, data, execution.workers, execution.device,
                                                         show=execution.show_progress))
    return run_loso(data, runner, out, seeds=seeds, folds=folds, config=config, execution=execution)


def memory_workers(runner, data, workers: int, device="cpu", show: bool = True) -> int:
    """How many of ``workers`` fit in the memory here for every recipe of ``runner``
    (:func:`am3f.protocol.memory.plan`); refuses in one line, before anything trains, a model that cannot fit."""
    from am3f.protocol.memory import GIB, plan

    plans = [plan(model_cfg, train_cfg, workers=workers, device=str(device), image_size=data.image_size[0],
                  n_train=len(data)) for model_cfg, train_cfg in runner.recipes()]
    if not plans:  # a runner that trains nothing
        return workers
    fit = min(p.workers for p in plans)
    if fit < workers and show:
        worst = max(plans, key=lambda p: p.per_worker)
        print(f"memory: {fit} of {workers} worker(s) fit ({worst.per_worker / GIB:.1f} GiB each for groups of "
              f"{worst.group} fold(s), {worst.available / GIB:.1f} GiB available)")
    return fit


def _refuse_other_data(path: Path, data) -> None:
    """A finished run is used only for the data it was made on (its data.json fingerprint)."""
    from am3f.data.dataset import data_fingerprint
    from am3f.protocol.run_folder import read_json, refuse_other_data

    if (path / "data.json").is_file():
        recorded = read_json(path / "data.json", "the fingerprint of the run's data").get("fingerprint")
        refuse_other_data(path, recorded, data_fingerprint(data))


def _refuse_changed_model(out: Path, config: dict) -> None:
    """A run of a user's model resumes only with the code it started with (its recorded source: a
    file's or a module's SHA-256). The data is checked by :func:`am3f.protocol.run_folder.record_data`."""
    from am3f.protocol.run_folder import read_json

    old = read_json(out / "config.json", "the run's configuration") if (out / "config.json").is_file() else None
    was = (old or {}).get("model_config", {}).get("source")
    now = config.get("model_config", {}).get("source")
    if was and now and was != now:
        raise AM3FError(f"{out}: this run was started with other model code ({was.get('path') or was.get('module')}, "
                        f"SHA-256 {str(was.get('sha256'))[:12]}..., version {was.get('version')}); its results "
                        f"would mix two models: use a new --out")


def parse_seeds(seeds: Sequence[int] | int | str) -> list[int]:
    """Seeds as a notebook parameter may arrive: 0, [0, 1], "0 1", "0,1" or "[0, 1, 2]" (papermill -p)."""
    import re

    if isinstance(seeds, int):
        return [seeds]
    if isinstance(seeds, str):
        parts = re.sub(r"[\[\],]", " ", seeds).split()
        try:
            return [int(s) for s in parts]
        except ValueError:
            raise AM3FError(f"seeds {seeds!r}: expected integers, e.g. [0, 1, 2] or \"0 1 2\"") from None
    return [int(s) for s in seeds]


def ensure_run(data, run_dir: str | os.PathLike = "", *, runs_dir: str | os.PathLike | None = None,
               model: str = "", variant: str = "", seeds: Sequence[int] | int | str = (0,),
               folds: str | Sequence[int] | None = "", epochs: int = 0, device: str = "auto",
               workers: int = 0, scheduler: str = "", split: str = "subject", recipe: str = "",
               show_progress: bool = True) -> Path:
    """A LOSO run of the variant (``model``, ``variant``) name on ``data``: reused when done, resumed
    when partial, else trained.

    ``run_dir`` empty: ``runs_dir/<variant>-<config hash>``, ``<variant>-tuned-<hash>`` when
    cross-fitted (so notebooks with equal parameters share one run). ``folds``: '' = every subject,
    or a range like '0-1' (quick looks only: a partial run is not a LOSO result). ``epochs`` 0 = the
    declared schedule of the variant. ``workers`` 0 = every usable core; ``scheduler``: a Dask
    scheduler address to run the folds on instead. ``split``: "subject" (LOSO) or "dataset"
    (cross-database, :func:`am3f.protocol.folds.with_split`). ``recipe``: a recipes.json of ``am3f tune`` (a
    cross-fitted run, :mod:`am3f.protocol.tuning`); '' = the variant's recipe.
    What it prints does not depend on whether the run existed before (notebooks show the same
    output whichever of them ran first).
    """
    from am3f.data.dataset import parse_index_ranges
    from am3f.protocol.folds import fold_names, with_split
    from am3f.utils import pick_device

    data = with_split(data, split)
    config = run_config(data, model, variant, recipe=recipe, epochs=epochs or None)
    if run_dir:
        path = Path(run_dir)
        if (path / "config.json").is_file():
            old = json.loads((path / "config.json").read_text())
            if config_hash(config) != config_hash(old):
                # made elsewhere (am3f loso, evaluate-weights, other parameters): use it as it is
                _refuse_other_data(path, data)  # another configuration, perhaps; never other data
                if show_progress:
                    print(f"using the existing run {path} as it is (its configuration differs from these "
                          f"notebook parameters: variant {old.get('variant', old.get('model'))!r})")
                return path
            config = old
    else:
        base = Path(runs_dir) if runs_dir else default_out_dir() / "runs"
        tuned = "-tuned" if config.get("tuned_recipe") else ""  # cross-fitted: tell the folders apart by name
        path = base / f"{run_name(config['variant'])}{tuned}-{config_hash(config)}"
        if (path / "config.json").is_file():
            # same experiment, perhaps other execution settings (data location): resume it as made
            config = json.loads((path / "config.json").read_text())
    fold_ids = parse_index_ranges(folds if folds not in (None, "") else None, len(fold_names(data)))
    dev = pick_device(device)
    # say=None: what it prints never depends on whether the run was there before (see the docstring)
    execution = Execution(workers=1 if dev.type == "cuda" else (workers or usable_cores()),
                          scheduler=scheduler or None, device=str(dev), show_progress=show_progress, say=None)
    return start_run(data, config, path, seeds=parse_seeds(seeds), folds=fold_ids, execution=execution)


# ----------------------------------------------------------------------------- a fold's model again
def fold_model(run_dir: str | os.PathLike, data, subject: str, seed: int = 0, device: str = "cpu",
               cache: bool = True):
    """The model of one LOSO fold of a run (trained without ``subject``; the first member when the
    run averages several per fold), for Grad-CAM and the explorer on held-out samples.

    Runs store predictions, not weights: the fold's group is re-trained through the same recipe
    function as the run (:func:`am3f.protocol.fold_runner.fit_folds`: rows, seeds, members), which gives exactly
    the run's models; every model of the group is cached as ``RUN/fold-models/s<seed>_<subject>.pt``
    so later calls load it. Returns the model in eval mode; it takes raw (u, v, strain) in [0, 1]."""
    import torch

    from am3f.models.registry import build_model
    from am3f.protocol.fold_runner import fit_folds
    from am3f.protocol.folds import fold_names, fold_of, with_split

    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    _refuse_other_data(run_dir, data)  # the run's models are those of its own data only
    data = with_split(data, config.get("dataset", {}).get("split", "subject"))  # folded as the run was
    fold = fold_of(data, subject)
    runner = runner_of(config)
    model_cfg, train_cfg = runner.fold_recipe(data, fold)  # a cross-fitted run: the fold's tuned recipe
    path = run_dir / "fold-models" / f"s{seed}_{fold_names(data)[fold]}.pt"
    if not (cache and path.is_file()):
        group = next(g for g in runner.groups(data) if fold in g)
        fits = fit_folds(data, group, model_cfg, train_cfg, seed=seed, device=device)
        if not cache:
            return next(f.models[0] for f in fits if f.fold == fold)
        for f in fits:
            state = {k: v.detach().cpu() for k, v in f.models[0].state_dict().items()}
            atomic_write(run_dir / "fold-models" / f"s{seed}_{fold_names(data)[f.fold]}.pt",
                         lambda p, st=state: torch.save(st, p))
    model = build_model(model_cfg, image_size=data.image_size[0])
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(device).eval()


# ----------------------------------------------------------------------------- published weights
class PublishedWeightsRunner(FoldRunner):
    """LOSO fold runner that trains nothing: fold k's published model predicts subject k."""

    def __init__(self, weights_dir: str | os.PathLike, device="cpu"):
        self.weights_dir = Path(weights_dir)
        self.device = str(device)

    def run_fold(self, train, test, *, seed: int, fold: int):
        import numpy as np
        import torch

        from am3f.models.peers.ststnet import load_published, weights_path
        from am3f.protocol.run_folder import FoldOutput

        subject = str(test.subjects[0])
        model = load_published(weights_path(self.weights_dir, subject), test.image_size[0]).to(self.device)
        with torch.no_grad():
            logits = model(torch.from_numpy(test.x).to(self.device))
        probs = torch.softmax(logits.double(), dim=1).cpu().numpy()
        return FoldOutput(scores=np.asarray(probs), info={"weights": weights_path(self.weights_dir, subject).name})


def evaluate_published_weights(weights_dir: str | os.PathLike, data, out: str | os.PathLike, *,
                               device="cpu", folds: list[int] | None = None,
                               show_progress: bool = True) -> Path:
    """Each subject's published model predicts that subject's samples; the result is an ordinary
    run directory ``out`` (what ``am3f evaluate-weights`` writes). Returns ``out``."""
    from am3f.models.peers.ststnet import check_weights_dir
    weights = check_weights_dir(weights_dir, data.subject_ids)
    config = {"kind": "evaluate-weights", "model": "ststnet", "weights": str(Path(weights).resolve())}
    return run_loso(data, PublishedWeightsRunner(weights, device), out, seeds=[0], config=config, folds=folds,
                    execution=Execution(device=str(device), show_progress=show_progress))
