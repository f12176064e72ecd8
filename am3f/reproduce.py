"""Run the companion notebooks end to end, and the small helpers every notebook starts with.

``am3f reproduce --profile quick|full [--data DIR] [--out DIR]`` executes ``notebooks/*.ipynb`` in
order with papermill, the parameters coming from the profile; executed notebooks go to OUT, every
figure (PNG + PDF) and table (Markdown + LaTeX + CSV) to OUT/figures, runs to OUT/runs.

Notebooks 03-08 need a LOSO run. They take ``run_dir`` from 02 when given; otherwise
:func:`ensure_run` finds or trains one in a folder named by a hash of its configuration, so a
notebook run on its own with the same parameters as 02 reuses 02's run instead of training again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .errors import AM3FError
from .report import PER_SAMPLE_DIR

OUT_ENV = "AM3F_OUT"
SHARED_ENV = "AM3F_SHARED"

NOTEBOOKS: tuple[str, ...] = (
    "00_walkthrough", "01_optical_flow", "02_train_loso", "03_results_tables", "04_ablations",
    "05_confusion_matrices", "06_gradcam", "07_protocol_audit", "08_explorer",
)

ABLATION_VARIANTS_FULL: tuple[str, ...] = (
    "full", "no_msff", "no_mofrw", "flow_weights_only", "channel_weights_only", "ce_loss", "tau0.5", "tau2",
    "u", "v", "strain", "uv", "u_strain", "v_strain", "ststnet",
)

# Notebook parameters per profile. `quick`: minutes on 2 CPU cores (a few folds, few epochs, one seed);
# `full`: the real reproduction (all folds, 3 seeds, the declared schedule, every ablation variant).
PROFILES: dict[str, dict] = {
    "quick": {"epochs": 2, "seeds": [0], "folds": "0-1", "variants": ["full", "no_msff", "u"],
              "max_cam_samples": 24, "cam_folds": 2},
    # Grad-CAM class averages re-fit one model per fold shown; 8 folds keeps that to a fraction of a run
    # ablations: one seed per variant (15 variants x 68 folds; 3 seeds each would triple a ~1 h CPU job);
    # the `full` row of the ablation table is the 3-seed main run, which shares its configuration
    "full": {"epochs": 0, "seeds": [0, 1, 2], "folds": "", "variants": list(ABLATION_VARIANTS_FULL),
             "ablation_seeds": [0], "max_cam_samples": 0, "cam_folds": 8},
}


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


def notebooks_dir() -> Path:
    root = repo_root()
    if root is None:
        raise AM3FError("the notebooks live in the source checkout; run `am3f reproduce` from an editable "
                        "install (pip install -e .)")
    return root / "notebooks"


def find_shared_dir(shared_dir: str | os.PathLike | None = "") -> Path | None:
    """The licence-restricted real data folder: the argument, else $AM3F_SHARED, else ../shared/data
    beside the checkout; None when absent (notebooks then skip the real-data parts) or when
    $AM3F_SHARED is ``none`` (the committed notebooks' synthetic-only runs)."""
    candidates = []
    if shared_dir:
        candidates.append(Path(shared_dir).expanduser())
    elif os.environ.get(SHARED_ENV, "").lower() == "none":
        return None
    else:
        if os.environ.get(SHARED_ENV):
            candidates.append(Path(os.environ[SHARED_ENV]).expanduser())
        root = repo_root()
        if root is not None:
            candidates.append(root.parent / "shared" / "data")
    for c in candidates:
        if (c / "megc2019-composite").is_dir() or (c / "real-onset-apex").is_dir():
            return c
    return None


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
          quiet: bool = False, **params) -> Context:
    """Load the dataset (synthetic default when ``data_root`` is empty), resolve output folders
    (defaults under the git-ignored ``out/``), print the SYNTHETIC banner; first cell of every notebook."""
    import matplotlib

    from .data import load_dataset

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
    data = load_dataset(data_root or None)
    out = default_out_dir()
    ctx = Context(data=data, figures_dir=Path(figures_dir or out / "figures"), runs_dir=Path(runs_dir or out / "runs"),
                  shared_dir=find_shared_dir(shared_dir), synthetic=bool(data.synthetic), params=params)
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
def _parse_seeds(seeds: Sequence[int] | int | str) -> list[int]:
    if isinstance(seeds, int):
        return [seeds]
    if isinstance(seeds, str):
        return [int(s) for s in seeds.replace(",", " ").split()]
    return [int(s) for s in seeds]


def run_config(data, model: str = "am3f", variant: str = "full", epochs: int = 0) -> dict:
    """The configuration stored in config.json of a notebook-made run: what `am3f loso` stores for the
    same model, variant and epochs (variant, full model/train configs, parameter count, dataset)."""
    from .train import loso_config

    if model not in ("am3f", "ststnet"):
        raise AM3FError(f"unknown model {model!r} (am3f or ststnet)")
    if model == "ststnet" and variant == "full":
        variant = "ststnet"
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
               show_progress: bool = True) -> Path:
    """A LOSO run of ``variant`` on ``data``: reused when done, resumed when partial, else trained.

    ``run_dir`` empty: ``runs_dir/<variant>-<config hash>`` (so notebooks with equal parameters
    share one run). ``folds``: '' = every subject, or a range like '0-1' (quick looks only: a partial
    run is not a LOSO result). ``epochs`` 0 = the declared schedule of the variant.
    """
    from .data import parse_index_ranges
    from .loso import run_loso
    from .model import ModelConfig
    from .train import TrainConfig, TrainRunner
    from .utils import pick_device

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
    seeds = _parse_seeds(seeds)
    dev = pick_device(device)
    runner = TrainRunner(ModelConfig.from_dict(config["model_config"]), TrainConfig.from_dict(config["train_config"]),
                         device=dev, record_epochs=True)
    run_loso(data, runner, path, seeds=seeds, folds=fold_ids, config=config, device=str(dev),
             show_progress=show_progress)
    return path


def fold_model(run_dir: str | os.PathLike, data, subject: str, seed: int = 0, device: str = "cpu", cache: bool = True):
    """The model of one LOSO fold (trained without ``subject``), for Grad-CAM on held-out samples.

    Re-fitted deterministically from the run's config and seed (runs do not store weights), then
    cached as ``RUN/models/s<seed>_<subject>.pt`` so later notebooks load it instead of training.
    Returns the model in eval mode.
    """
    import torch

    from .loso import split_fold
    from .model import ModelConfig, build_model
    from .train import TrainConfig, fit

    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    if "model_config" not in config:
        raise AM3FError(f"{run_dir}: run has no model/train configuration to re-fit from")
    model_cfg = ModelConfig.from_dict(config["model_config"])
    path = run_dir / "models" / f"s{seed}_{subject}.pt"
    if cache and path.is_file():
        model = build_model(model_cfg, image_size=data.image_size[0])
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.to(device).eval()
    train, _ = split_fold(data, subject)
    # fit_predict seeds the first model of a fold with seed * 1000 (see am3f.train.fit_predict)
    model, _ = fit(train, model_cfg, TrainConfig.from_dict(config["train_config"]), seed=seed * 1000, device=device)
    if cache:
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
        os.replace(tmp, path)
    return model.eval()


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
    """Run ``am3f evaluate-weights`` on the shared STSTNet weights (once; reused), or None without them."""
    shared = Path(shared_dir)
    weights, data = shared / "ststnet-reference" / "weights", shared / "megc2019-composite"
    if not weights.is_dir() or not data.is_dir():
        return None
    out = Path(out)
    if not (out / "predictions.csv").is_file():
        from .cli import main

        if main(["evaluate-weights", "--weights", str(weights), "--data", str(data), "--out", str(out),
                 "--device", "cpu"]) != 0:
            raise AM3FError("am3f evaluate-weights failed (see the message above)")
    return out


# ----------------------------------------------------------------------------- reproduce
def notebook_parameters(name: str, profile: str, data_root: str, out: Path) -> dict:
    """papermill parameters of one notebook under a profile (only names the notebook declares are passed)."""
    if profile not in PROFILES:
        raise AM3FError(f"unknown profile {profile!r} (choose from {', '.join(PROFILES)})")
    p = PROFILES[profile]
    # run_dir stays empty: every notebook then finds 02's run by its configuration hash in runs_dir
    common = {"data_root": data_root, "figures_dir": str(out / "figures"), "runs_dir": str(out / "runs"),
              "epochs": p["epochs"], "seeds": p["seeds"], "folds": p["folds"]}
    extra = {"04_ablations": {"variants": p["variants"], "seeds": p.get("ablation_seeds", p["seeds"])},
             "06_gradcam": {"max_samples": p["max_cam_samples"], "cam_folds": p["cam_folds"]},
             "00_walkthrough": {"train_epochs": max(p["epochs"], 2) if profile == "quick" else 10}}
    return {**common, **extra.get(name, {})}


def _declared_parameters(path: Path) -> set[str]:
    import papermill as pm

    return set(pm.inspect_notebook(str(path)).keys())


def reproduce(data_root: str | os.PathLike | None = None, profile: str = "quick", out: str | os.PathLike | None = None,
              notebooks: Sequence[str] | None = None, kernel: str = "python3", show_progress: bool = True) -> Path:
    """Execute the notebooks in order into ``out`` (default: ``reproduce-<profile>`` in
    :func:`default_out_dir`), see module doc; returns ``out``."""
    import papermill as pm

    from .utils import progress

    if profile not in PROFILES:
        raise AM3FError(f"unknown profile {profile!r} (choose from {', '.join(PROFILES)})")
    src = notebooks_dir()
    names = list(notebooks) if notebooks else list(NOTEBOOKS)
    missing = [n for n in names if not (src / f"{n}.ipynb").is_file()]
    if missing:
        raise AM3FError(f"{src}: notebook(s) not found: {', '.join(missing)}")
    out = Path(out).resolve() if out else default_out_dir() / f"reproduce-{profile}"
    (out / "figures").mkdir(parents=True, exist_ok=True)
    data_root = str(Path(data_root).resolve()) if data_root else ""
    timings = {}
    bar = progress(names, desc=f"reproduce ({profile})", unit="notebook", disable=not show_progress)
    for name in bar:
        bar.set_postfix_str(name)
        nb = src / f"{name}.ipynb"
        declared = _declared_parameters(nb)
        params = {k: v for k, v in notebook_parameters(name, profile, data_root, out).items() if k in declared}
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(out / f"{name}.ipynb"), parameters=params, kernel_name=kernel,
                                progress_bar=False, cwd=str(out), log_output=False)
        except pm.PapermillExecutionError as exc:
            raise AM3FError(f"notebook {name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue} "
                            f"(executed copy with the traceback: {out / (name + '.ipynb')})") from None
        timings[name] = round(time.perf_counter() - t0, 1)
    (out / "reproduce.json").write_text(json.dumps({"profile": profile, "data_root": data_root or "(synthetic)",
                                                    "notebooks_s": timings}, indent=2))
    return out


def summary_lines(out: str | os.PathLike) -> list[str]:
    """What `am3f reproduce` prints at the end: where each kind of output is."""
    out = Path(out)
    figs = sorted((out / "figures").glob("*"))
    n_png = sum(p.suffix == ".png" for p in figs)
    n_pdf = sum(p.suffix == ".pdf" for p in figs)
    n_tab = sum(p.suffix in (".md", ".tex") for p in figs)
    return [f"executed notebooks: {out}/NN_*.ipynb",
            f"figures: {out / 'figures'} ({n_png} PNG, {n_pdf} PDF)",
            f"tables:  {out / 'figures'} ({n_tab} Markdown/LaTeX files, e.g. results*.md, peers*.tex)",
            *([f"per-sample figures of licence-restricted data (keep local): {out / 'figures' / PER_SAMPLE_DIR}"]
              if (out / "figures" / PER_SAMPLE_DIR).is_dir() else []),
            f"runs:    {out / 'runs'}",
            f"timings: {out / 'reproduce.json'}"]
