"""What every notebook starts with: :func:`setup` (data, output folders, the SYNTHETIC banner), plus
a few teaching helpers. The runs a notebook shows are found, resumed or trained by
:func:`am3f.protocol.launch.ensure_run`; a fold's model for Grad-CAM is :func:`am3f.protocol.launch.fold_model`.

Real (licence-restricted) data is read only when asked for: ``data_root`` (or ``$AM3F_DATA``) for
the flow images, ``shared_dir`` for the reference material (published STSTNet weights, real
onset/apex frames). Empty means the embedded synthetic set and no reference checks.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from am3f.errors import AM3FError
from am3f.protocol.launch import default_out_dir

REFERENCE_SUBDIRS = ("ststnet-reference", "real-onset-apex")


# ----------------------------------------------------------------------------- paths
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
          quiet: bool = False, synthetic_only: bool = False, datasets: str = "", **params) -> Context:
    """Load the dataset (the embedded synthetic set when ``data_root`` and ``$AM3F_DATA`` are empty,
    or always with ``synthetic_only``), resolve output folders (defaults under the git-ignored
    ``out/``), print the SYNTHETIC banner; the first cell of every notebook. ``datasets``: keep only
    these source databases (e.g. ``"samm"``: the single-database protocol,
    :func:`am3f.data.dataset.select_datasets`)."""
    import matplotlib

    from am3f.data.dataset import load_dataset, select_datasets

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
    data = synthetic_data() if synthetic_only else load_dataset(data_root or None)
    data = select_datasets(data, datasets)
    out = default_out_dir()
    ctx = Context(data=data, figures_dir=Path(figures_dir or out / "figures"), runs_dir=Path(runs_dir or out / "runs"),
                  shared_dir=reference_dir(shared_dir), synthetic=bool(data.synthetic), params=params)
    ctx.figures_dir.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(ctx.banner())
        print(data.describe())
        print(f"figures -> {shown_path(ctx.figures_dir)}\nruns    -> {shown_path(ctx.runs_dir)}")
    return ctx


def shown_path(path: Path) -> str:
    """``path`` as a notebook prints it: relative to the checkout when inside it (``out/figures``), so a
    committed output does not depend on where the notebook ran (JupyterLab starts it in notebooks/)."""
    from am3f.protocol.launch import repo_root

    root = repo_root()
    try:
        return str(Path(path).resolve().relative_to(root)) if root is not None else str(path)
    except ValueError:
        return str(path)


def synthetic_data():
    """The embedded synthetic set itself, whatever $AM3F_DATA says (its frames and true flow are
    what the teaching figures draw: never a real face)."""
    from am3f.data.dataset import load_flow_dataset
    from am3f.flow.synth import default_synthetic_root

    return load_flow_dataset(default_synthetic_root(), name="synthetic")


# ----------------------------------------------------------------------------- teaching helpers
def fit_without(data, subject: str, variant: str = "full", epochs: int = 0, seed: int = 0, device: str = "cpu"):
    """A model of ``variant`` fitted with its whole recipe on every subject but ``subject`` (so it can
    be shown held-out samples honestly); ``epochs`` 0 = the declared schedule. Trained alone (a run
    trains its folds in groups: float rounding differs slightly). Returns the model in eval mode."""
    from am3f.protocol.fold_runner import fit_folds
    from am3f.protocol.folds import fold_of
    from am3f.training.recipe import resolve_variant

    model_cfg, train_cfg = resolve_variant(variant, epochs=epochs or None)
    return fit_folds(data, [fold_of(data, subject)], model_cfg, train_cfg, seed=seed, device=device)[0].models[0]


# the real onset/apex GIFs notebook 01 compares with the community's flow images (shared_dir/real-onset-apex/)
REFERENCE_GIFS: tuple[str, ...] = ("006_006_1_2", "s03_s03_po_11")


def real_gif_correlations(shared_dir: str | os.PathLike, names: tuple[str, ...] = REFERENCE_GIFS,
                          method: str = "tvl1"):
    """Notebook 01's check on real frames: :func:`am3f.flow.optical_flow.reference_correlations` of the GIFs
    ``shared_dir/real-onset-apex/<name>.gif`` against ``shared_dir/megc2019-composite/flows/``."""
    from am3f.flow.optical_flow import flow_image_path, reference_correlations

    shared = Path(shared_dir)
    pairs = []
    for name in names:
        subject, sample = name.split("_", 1)
        pairs.append((name, shared / "real-onset-apex" / f"{name}.gif",
                      flow_image_path(shared / "megc2019-composite" / "flows", subject, sample)))
    return reference_correlations(pairs, method)


def evaluate_published_ststnet(shared_dir: str | os.PathLike, out: str | os.PathLike) -> Path | None:
    """A run of the published STSTNet weights in ``shared_dir`` (made once, then reused), or None
    when the folder does not hold them."""
    from am3f.data.dataset import load_flow_dataset
    from am3f.protocol.launch import evaluate_published_weights

    shared = Path(shared_dir)
    weights, data = shared / "ststnet-reference" / "weights", shared / "megc2019-composite"
    if not weights.is_dir() or not data.is_dir():
        return None
    out = Path(out)
    if not (out / "predictions.csv").is_file():
        evaluate_published_weights(weights, load_flow_dataset(data), out, device="cpu", show_progress=False)
    return out
