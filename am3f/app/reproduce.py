"""Run the companion notebooks end to end (``am3f reproduce``), and keep the committed notebooks'
outputs (``am3f reproduce --in-place``).

``am3f reproduce --profile quick|full [--data DIR] [--out DIR]`` executes ``notebooks/*.ipynb`` in
order with papermill, the parameters coming from the profile; executed notebooks go to OUT, every
figure (PNG + PDF) and table (Markdown + LaTeX + CSV) to OUT/figures, runs to OUT/runs.

Notebooks 03-08 need a LOSO run; they find the one notebook 02 made by its configuration (see
:func:`am3f.protocol.launch.ensure_run`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from am3f.app.notebook import REFERENCE_SUBDIRS
from am3f.errors import AM3FError
from am3f.protocol.launch import default_out_dir, repo_root
from am3f.results.writers import PER_SAMPLE_DIR

NOTEBOOKS: tuple[str, ...] = (
    "00_walkthrough", "01_optical_flow", "02_train_loso", "03_results_tables", "04_ablations",
    "05_confusion_matrices", "06_gradcam", "07_protocol_audit", "08_explorer", "09_leaderboard", "10_your_model",
)

ABLATION_VARIANTS_FULL: tuple[str, ...] = (
    "full", "no_msff", "no_mofrw", "flow_weights_only", "channel_weights_only", "ce_loss", "tau0.5", "tau2",
    "u", "v", "strain", "uv", "u_strain", "v_strain", "ststnet",
)

SEEDS_5 = [0, 1, 2, 3, 4]
LEADERBOARD_FULL: tuple[str, ...] = (
    "full", "ststnet", "dualinception", "offapexnet", "rcn", "htnet-small", "rcn-authors", "ststnet-authors",
)
# the architectures of the leaderboard's tuned rows (and of its ensemble): every one the CPU affords
TUNED_FULL: tuple[str, ...] = ("am3f", "ststnet", "rcn", "dualinception", "offapexnet", "htnet-small")

# Notebook parameters per profile. `quick`: minutes on 2 CPU cores (a few folds, few epochs, one seed);
# `full`: the real reproduction of notebooks 00-08 (all folds, the declared schedule, 5 seeds for the
# main model and for every ablation variant); `leaderboard`: notebook 09, every architecture tuned on
# training subjects only (cross-fitted) and their ensemble, the authors' recipes that fit a CPU, and our
# declared schedule, ONE seed per row (`--seeds` for more): on 2 CPU cores the tuned rows alone take
# about 2.5 h (their chosen recipes mostly train 60 epochs), so five seeds would be about 10 h
# (docs/peers.md has the measured times). It reuses the runs `full` made in the same --out. The
# authors' recipes of Dual-Inception (batch 3), OFF-ApexNet (3000 epochs) and HTNet (800 epochs, 140 M
# parameters) take days on 2 CPU cores: not in any profile (docs/peers.md).
# The leaderboard's tuned rows (`tuned`) use the committed cross-fitted tunings of the real set
# (figures/tuning/<arch>/recipes.json, made by `am3f tune`); on other data they are tuned in OUT/tuning.
PROFILES: dict[str, dict] = {
    "quick": {"epochs": 2, "seeds": [0], "folds": "0-1", "variants": ["full", "no_msff", "u"],
              "leaderboard": ["full", "ststnet", "rcn"], "max_cam_samples": 24,
              "cam_folds": 2},
    # Grad-CAM class averages over the held-out samples of 8 folds (their fold models are re-trained)
    "full": {"epochs": 0, "seeds": SEEDS_5, "folds": "", "variants": list(ABLATION_VARIANTS_FULL),
             "max_cam_samples": 0, "cam_folds": 8, "notebooks": list(NOTEBOOKS[:9])},
    "leaderboard": {"epochs": 0, "seeds": [0], "folds": "", "leaderboard": list(LEADERBOARD_FULL),
                    "tuned": list(TUNED_FULL), "notebooks": ["09_leaderboard"]},
}


# ----------------------------------------------------------------------------- paths
def notebooks_dir() -> Path:
    root = repo_root()
    if root is None:
        raise AM3FError("the notebooks live in the source checkout; run `am3f reproduce` from an editable "
                        "install (pip install -e .)")
    return root / "notebooks"


# ----------------------------------------------------------------------------- reproduce
def check_inputs(data_root: str | os.PathLike | None, reference: str | os.PathLike | None = None
                 ) -> tuple[str, str]:
    """Validate what a reproduction will read before any notebook starts: the dataset is loaded once
    (every file checked), the reference folder must exist. Returns (data_root, shared_dir) as the
    notebooks' parameters take them ('' = not used).

    Real reference material is read only when asked for: ``reference``, or the folder above an
    explicitly given ``data_root`` when it holds ``ststnet-reference/`` or ``real-onset-apex/``."""
    from am3f.app.notebook import reference_dir
    from am3f.data.dataset import load_flow_dataset

    if reference and not data_root:
        raise AM3FError("--reference needs --data (the reference checks compare against the real data set)")
    if not data_root:
        return "", ""
    data = load_flow_dataset(data_root)
    shared = reference_dir(reference) if reference else reference_dir(Path(data.root).parent)
    if reference and shared is None:
        raise AM3FError(f"{reference}: holds none of {', '.join(REFERENCE_SUBDIRS)}")
    return str(Path(data.root).resolve()), str(shared.resolve()) if shared else ""


def notebook_parameters(name: str, profile: str, data_root: str, out: Path, shared_dir: str = "",
                        workers: int = 0, scheduler: str = "", seeds: Sequence[int] | None = None) -> dict:
    """papermill parameters of one notebook under a profile (only names the notebook declares are passed).
    ``seeds``: the seeds of every run instead of the profile's (and of its per-row seeds)."""
    if profile not in PROFILES:
        raise AM3FError(f"unknown profile {profile!r} (choose from {', '.join(PROFILES)})")
    p = dict(PROFILES[profile])
    if seeds:
        p.update(seeds=[int(s) for s in seeds], variant_seeds={})
    # run_dir stays empty: every notebook then finds 02's run by its configuration hash in runs_dir
    common = {"data_root": data_root, "shared_dir": shared_dir, "figures_dir": str(out / "figures"),
              "runs_dir": str(out / "runs"), "epochs": p["epochs"], "seeds": p["seeds"], "folds": p["folds"],
              "workers": workers, "scheduler": scheduler}
    extra = {"04_ablations": {"variants": p.get("variants", ["full"])},
             "06_gradcam": {"max_samples": p.get("max_cam_samples", 0), "cam_folds": p.get("cam_folds", 8)},
             "09_leaderboard": {"variants": p.get("leaderboard", ["full"]),
                                "variant_seeds": p.get("variant_seeds", {}), "tuned": p.get("tuned", []),
                                "tuning_dir": _tuning_dir(data_root, out)},
             "00_walkthrough": {"train_epochs": max(p["epochs"], 2) if profile == "quick" else 10}}
    return {**common, **extra.get(name, {})}


def _tuning_dir(data_root: str, out: Path) -> str:
    """Where notebook 09 finds (or makes) its tunings: with real data the committed ones (cross-fitted by
    subject: a fold's recipe never saw its subject, whichever flow images of those subjects are given;
    subjects the tunings do not cover are refused by `am3f loso --recipe`); synthetic: OUT/tuning."""
    committed = (repo_root() or Path(".")) / "figures" / "tuning"
    return str(committed) if data_root and committed.is_dir() else str(out / "tuning")


def _absolute_model(model: str) -> str:
    where, _, factory = model.rpartition(":")
    return f"{Path(where).resolve()}:{factory}" if where.endswith(".py") else model


def _declared_parameters(path: Path) -> set[str]:
    import papermill as pm

    return set(pm.inspect_notebook(str(path)).keys())


def quiet_kernel_manager():
    """A local-kernel manager whose own log lines (transport warnings, the interrupt at shutdown) go
    nowhere; what the cells print, and their errors, still land in the executed notebook."""
    import subprocess

    from jupyter_client.manager import KernelManager

    class QuietKernelManager(KernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            kw["stdout"] = kw["stderr"] = subprocess.DEVNULL
            return await super()._async_launch_kernel(kernel_cmd, **kw)

    return QuietKernelManager


def reproduce(data_root: str | os.PathLike | None = None, profile: str = "quick", out: str | os.PathLike | None = None,
              notebooks: Sequence[str] | None = None, kernel: str = "python3", show_progress: bool = True,
              shared_dir: str | os.PathLike = "", workers: int = 0, scheduler: str = "", model: str = "",
              recipe: str | os.PathLike = "", seeds: Sequence[int] | None = None, datasets: str = "") -> Path:
    """Execute the notebooks in order into ``out`` (default: ``reproduce-<profile>`` in
    :func:`default_out_dir`), see module doc; returns ``out``. ``shared_dir``: real reference
    material for notebooks 01 and 03 (see :func:`check_inputs`). ``model``: the notebooks' ``model``
    parameter (e.g. your own ``PATH.py:FACTORY``; a relative path is made absolute: notebooks run in OUT).
    ``recipe``: a recipes.json of ``am3f tune`` for the notebooks that declare ``recipe`` (02-08: their
    run is then cross-fitted, :mod:`am3f.protocol.tuning`). ``seeds``: every run's seeds instead of the profile's.
    ``datasets``: the notebooks' ``datasets`` parameter (02-08: LOSO inside those databases only)."""
    import papermill as pm

    from am3f.utils import progress

    if profile not in PROFILES:
        raise AM3FError(f"unknown profile {profile!r} (choose from {', '.join(PROFILES)})")
    src = notebooks_dir()
    names = list(notebooks) if notebooks else list(PROFILES[profile].get("notebooks", NOTEBOOKS))
    missing = [n for n in names if not (src / f"{n}.ipynb").is_file()]
    if missing:
        raise AM3FError(f"{src}: notebook(s) not found: {', '.join(missing)} (known: {', '.join(NOTEBOOKS)})")
    out = Path(out).resolve() if out else default_out_dir() / f"reproduce-{profile}"
    (out / "figures").mkdir(parents=True, exist_ok=True)
    data_root = str(Path(data_root).resolve()) if data_root else ""
    shared_dir = str(Path(shared_dir).resolve()) if shared_dir else ""
    timings = _earlier_timings(out, profile, data_root)
    bar = progress(names, desc=f"reproduce ({profile})", unit="notebook", disable=not show_progress)
    for name in bar:
        bar.set_postfix_str(name)
        nb = src / f"{name}.ipynb"
        declared = _declared_parameters(nb)
        params = {k: v for k, v in notebook_parameters(name, profile, data_root, out, shared_dir, workers,
                                                       scheduler, seeds).items() if k in declared}
        if model and "model" in declared:
            params["model"] = _absolute_model(model)
        if recipe and "recipe" in declared:
            params["recipe"] = str(Path(recipe).resolve())
        if datasets and "datasets" in declared:
            params["datasets"] = datasets
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(out / f"{name}.ipynb"), parameters=params, kernel_name=kernel,
                                progress_bar=False, cwd=str(out), log_output=False,
                                kernel_manager_class=quiet_kernel_manager())
        except pm.PapermillExecutionError as exc:
            raise AM3FError(f"notebook {name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue} "
                            f"(executed copy with the traceback: {out / (name + '.ipynb')})") from None
        timings[name] = round(time.perf_counter() - t0, 1)
        # after every notebook, so that a later failure keeps the timings of those that ran
        (out / "reproduce.json").write_text(json.dumps({"profile": profile, "data_root": data_root or "(synthetic)",
                                                        "shared_dir": shared_dir or None, "notebooks_s": timings},
                                                       indent=2))
    return out


def _earlier_timings(out: Path, profile: str, data_root: str) -> dict[str, float]:
    """The notebook timings an earlier `am3f reproduce` into ``out`` recorded with the same profile and
    data (a call with --notebooks adds to them instead of overwriting them); otherwise none."""
    try:
        earlier = json.loads((out / "reproduce.json").read_text())
    except (OSError, ValueError):
        return {}
    same = earlier.get("profile") == profile and earlier.get("data_root") == (data_root or "(synthetic)")
    return dict(earlier.get("notebooks_s", {})) if same else {}


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


# ----------------------------------------------------------------------------- committed notebooks (in place)
# ``am3f reproduce --in-place`` executes notebooks/*.ipynb with their own default parameters (the
# embedded SYNTHETIC set, CI-sized) and writes each executed notebook back, so the notebooks can be
# read on GitHub or in the rendered site without running them. Strict nbval then re-executes them
# and compares every text output with the committed one. Both run the kernels in the same
# environment (:func:`kernel_env`); :func:`normalise` strips what changes between two executions of
# unchanged code, so re-executing without a code change gives byte-identical files.
# folder names of the licence-restricted data: no committed notebook output may mention them
REAL_DATA_NAMES = ("megc2019-composite", "real-onset-apex", "ststnet-reference", "shared/data")
SYNTHETIC_MARK = "SYNTHETIC"
# what `out` is called in committed outputs (the temporary AM3F_OUT of the execution is replaced by it)
OUT_PLACEHOLDER = "out"
# mime types that carry random ids or need a live kernel; their text/plain fallback is kept
DROPPED_MIME = ("application/vnd.jupyter.widget-view+json",)
# Notebook-level metadata: exactly what JupyterLab 4 writes into a notebook it opens, so that opening a
# committed notebook changes nothing (no dirty flag, no autosave, no `git status` noise). When a
# notebook's kernel starts, JupyterLab's NotebookPanel sets ``kernelspec`` to {name, display_name,
# language} of the kernel spec the server lists (_updateSpec) and ``language_info`` to the
# ``language_info`` of the kernel's kernel_info reply (_updateLanguage); YNotebook.setMetadata does
# nothing for a deep-equal value, so the notebook is marked dirty only when the stored value differs.
# Everything else (widget state, papermill, execution timestamps, ...) is dropped.
KEPT_NB_METADATA = ("kernelspec", "language_info")
# the kernel spec ipykernel installs (`jupyter kernelspec list`), as JupyterLab writes it
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
# ipykernel's kernel_info reply without its "version". The version (Python's, e.g. "3.11.7") is kept
# as the executing kernel reported it: JupyterLab writes the version of whatever kernel it starts, so
# leaving it out (or rounding it to "3.11") would make EVERY open rewrite the file, whereas keeping it
# makes an open in the environment that made the outputs change nothing, and one on another Python
# patch release change that one line only. It also records which Python computed the outputs.
# (nbval does not compare metadata, so strict nbval does not depend on it.)
LANGUAGE_INFO = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                 "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                 "pygments_lexer": "ipython3"}
# JupyterLab 4 saves nbformat 4.5 (it raises an older minor to 5): cells carry ids, which it keeps
NBFORMAT_MINOR = 5
# cell-level metadata kept (tags carry the `parameters` cell and nbval's per-cell markers)
KEPT_CELL_METADATA = ("tags", "nbval")


# Kernels pinned to one instruction set in the kernels that make or check the committed outputs: torch
# (ATen), oneDNN and MKL otherwise pick theirs by CPU (AVX-512 on the Intel machines, AVX2 on the AMD
# ones this project also runs on), and the notebooks' tiny two-fold trainings then print other scores
# (docs/usage.md). AVX2, which both have; only where the CPU has it (Linux flags), and a value already
# set in the environment wins.
AVX2_PINS = {"ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}


def cpu_has_avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no pin
        return False


def kernel_env(out_dir: str | os.PathLike, base: dict | None = None) -> dict:
    """The environment of a kernel that makes the committed outputs (or checks them under nbval)."""
    from am3f.data.dataset import DATA_ENV
    from am3f.protocol.launch import OUT_ENV

    env = dict(os.environ if base is None else base)
    env.pop(DATA_ENV, None)                 # data_root "" -> the embedded synthetic set (shared_dir "" -> none)
    env[OUT_ENV] = str(out_dir)             # fresh runs and figures, not ones left in out/
    env["AM3F_PROGRESS"] = "0"              # no progress bars in outputs
    env["CUDA_VISIBLE_DEVICES"] = ""        # CPU: the numbers must not depend on a GPU being present
    env["PYTHONHASHSEED"] = "0"
    env.pop("MPLBACKEND", None)             # the notebooks' %matplotlib inline
    for name, value in (AVX2_PINS.items() if cpu_has_avx2() else ()):
        env.setdefault(name, value)         # the same kernels on an AVX-512 machine as on an AVX2 one
    return env


def _replace(text, replacements: Sequence[tuple[str, str]]):
    if isinstance(text, list):
        return [_replace(t, replacements) for t in text]
    if not isinstance(text, str):
        return text
    for old, new in replacements:
        text = text.replace(old, new)
    return text


def normalise(nb, replacements: Sequence[tuple[str, str]] = ()):
    """Strip what varies between executions of unchanged code; ``replacements`` (old, new) are applied
    to every text output (e.g. the temporary output folder -> ``out``). The notebook's metadata becomes
    what JupyterLab writes on open (:data:`KERNELSPEC`, :data:`LANGUAGE_INFO` + the kernel's Python
    version). Returns ``nb`` (changed in place)."""
    from nbformat import from_dict

    version = (nb.metadata.get("language_info") or {}).get("version")   # the executing kernel's (nbclient)
    nb.metadata = from_dict({"kernelspec": KERNELSPEC,
                             "language_info": {**LANGUAGE_INFO, **({"version": version} if version else {})}})
    if nb.nbformat_minor < NBFORMAT_MINOR:
        nb.nbformat_minor = NBFORMAT_MINOR
        for i, cell in enumerate(nb.cells):
            cell.setdefault("id", f"cell-{i}")
    for cell in nb.cells:
        cell.metadata = type(cell.metadata)({k: v for k, v in cell.metadata.items() if k in KEPT_CELL_METADATA})
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.outputs:
            if out.output_type in ("display_data", "execute_result"):
                for mime in DROPPED_MIME:
                    out.data.pop(mime, None)
                if not out.data:
                    continue
                for mime, value in out.data.items():
                    if mime.startswith("text/"):
                        out.data[mime] = _replace(value, replacements)
                out.metadata = type(out.metadata)({k: v for k, v in out.metadata.items() if k != "transient"})
            elif out.output_type == "stream":
                out.text = _replace(out.text, replacements)
            elif out.output_type == "error":
                out.traceback = _replace(out.traceback, replacements)
                out.evalue = _replace(out.evalue, replacements)
            outputs.append(out)
        cell.outputs = outputs
    return nb


def _output_texts(nb) -> Iterable[tuple[int, str]]:
    """(cell index, text) of every text output of a notebook."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                yield i, out.text
            elif out.output_type == "error":
                yield i, "\n".join(out.traceback) + out.evalue
            elif out.output_type in ("display_data", "execute_result"):
                for mime, value in out.data.items():
                    if mime.startswith("text/"):
                        yield i, "".join(value) if isinstance(value, list) else value


def output_problems(nb, name: str = "notebook") -> list[str]:
    """Why a notebook's stored outputs may not be committed (empty list: they may).

    * no output names a folder of the licence-restricted data;
    * outputs exist, and the first one is the SYNTHETIC banner that :func:`am3f.app.notebook.setup`
      prints before any result, so every result below it is marked as synthetic;
    * no output is an error.
    """
    problems = []
    texts = list(_output_texts(nb))
    for i, text in texts:
        low = text.lower()
        for real in REAL_DATA_NAMES:
            if real in low:
                problems.append(f"{name}: cell {i} output names the real data folder {real!r}")
        if "real data: " in low and SYNTHETIC_MARK not in text:
            problems.append(f"{name}: cell {i} output comes from real data")
    if not texts:
        problems.append(f"{name}: no outputs (execute it with `am3f reproduce --in-place`)")
    elif SYNTHETIC_MARK not in texts[0][1]:
        problems.append(f"{name}: the first output (cell {texts[0][0]}) is not the SYNTHETIC DATA banner")
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.output_type == "error":
                problems.append(f"{name}: stored error output {out.ename}")
    return problems


def execute_notebook(path: Path, out_dir: Path, kernel: str | None = None, timeout: int = 3600):
    """Execute one notebook (its own default parameters) in :func:`kernel_env`; returns the normalised
    executed notebook (not written)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = strip_outputs(nbformat.read(path, as_version=4))
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel or nb.metadata["kernelspec"]["name"],
                            resources={"metadata": {"path": str(path.parent)}}, record_timing=False,
                            allow_errors=False, kernel_manager_class=quiet_kernel_manager())
    try:
        client.execute(env=kernel_env(out_dir))
    except CellExecutionError as exc:
        raise AM3FError(f"{path.name} failed: {str(exc).strip().splitlines()[-1]}") from None
    return normalise(nb, [(str(out_dir), OUT_PLACEHOLDER)])


def execute_in_place(names: Sequence[str] | None = None, show_progress: bool = True) -> dict[str, float]:
    """Execute ``notebooks/NAME.ipynb`` (default: all, in order) with their default parameters on the
    synthetic set and write them back; returns seconds per notebook. A notebook that fails, or whose
    outputs fail :func:`output_problems`, is not written."""
    import nbformat

    from am3f.utils import progress

    src = notebooks_dir()
    names = list(names) if names else list(NOTEBOOKS)
    missing = [n for n in names if not (src / f"{n}.ipynb").is_file()]
    if missing:
        raise AM3FError(f"{src}: notebook(s) not found: {', '.join(missing)}")
    timings = {}
    tmp = Path(tempfile.mkdtemp(prefix="am3f-nb-"))
    try:
        out_dir = tmp / "out"   # one folder for all, as under nbval: 03-08 reuse the run 02 made
        bar = progress(names, desc="execute notebooks in place", unit="notebook", disable=not show_progress)
        for name in bar:
            bar.set_postfix_str(name)
            t0 = time.perf_counter()
            nb = execute_notebook(src / f"{name}.ipynb", out_dir)
            problems = output_problems(nb, name)
            if problems:
                raise AM3FError("; ".join(problems))
            nbformat.write(nb, src / f"{name}.ipynb")
            timings[name] = round(time.perf_counter() - t0, 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return timings


def strip_outputs(nb):
    """Clear every output in place (the notebook as before execution); returns ``nb``."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb
