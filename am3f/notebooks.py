"""The committed notebooks' outputs: executed in place on the synthetic set, normalised, checked.

``am3f reproduce --in-place`` executes ``notebooks/*.ipynb`` with their own default parameters (the
embedded SYNTHETIC set, CI-sized) and writes each executed notebook back, so the notebooks can be read
on GitHub or in the rendered site without running them. Strict nbval (``python -m pytest --nbval
--nbval-sanitize-with notebooks/nbval_sanitize.cfg notebooks``) then re-executes them and compares
every text output with the committed one.

Both run the kernels in the same environment (:func:`kernel_env`): real data switched off (no
``$AM3F_DATA``, ``$AM3F_SHARED=none``, so ``../shared/data`` is not auto-detected), CPU only, no
progress bars, and a fresh ``$AM3F_OUT`` so every number is computed by this very run rather than
read from an old run in ``out/runs``. :func:`normalise` strips what changes between two executions
of unchanged code (timestamps, durations, widget ids, the temporary output folder), so re-executing
without a code change gives byte-identical files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterable, Sequence

from .errors import AM3FError

# folder names of the licence-restricted data: no committed notebook output may mention them
REAL_DATA_NAMES = ("megc2019-composite", "real-onset-apex", "ststnet-reference", "shared/data")
SYNTHETIC_MARK = "SYNTHETIC"
# what `out` is called in committed outputs (the temporary AM3F_OUT of the execution is replaced by it)
OUT_PLACEHOLDER = "out"
# mime types that carry random ids or need a live kernel; their text/plain fallback is kept
DROPPED_MIME = ("application/vnd.jupyter.widget-view+json",)
# notebook-level metadata kept; everything else (widget state, papermill, ...) is dropped
KEPT_NB_METADATA = ("kernelspec",)
# cell-level metadata kept (tags carry the `parameters` cell and nbval's per-cell markers)
KEPT_CELL_METADATA = ("tags", "nbval")


def kernel_env(out_dir: str | os.PathLike, base: dict | None = None) -> dict:
    """The environment of a kernel that makes the committed outputs (or checks them under nbval)."""
    from .data import DATA_ENV
    from .reproduce import OUT_ENV, SHARED_ENV

    env = dict(os.environ if base is None else base)
    env.pop(DATA_ENV, None)                 # data_root "" -> the embedded synthetic set
    env[SHARED_ENV] = "none"                # no real-data sections, whatever lies beside the checkout
    env[OUT_ENV] = str(out_dir)             # fresh runs and figures, not ones left in out/
    env["AM3F_PROGRESS"] = "0"              # no progress bars in outputs
    env["CUDA_VISIBLE_DEVICES"] = ""        # CPU: the numbers must not depend on a GPU being present
    env["PYTHONHASHSEED"] = "0"
    env.pop("MPLBACKEND", None)             # the notebooks' %matplotlib inline
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
    to every text output (e.g. the temporary output folder -> ``out``). Returns ``nb`` (changed in place)."""
    nb.metadata = type(nb.metadata)({k: v for k, v in nb.metadata.items() if k in KEPT_NB_METADATA})
    nb.metadata["language_info"] = {"name": "python"}       # not the kernel's exact Python version
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
    * outputs exist, and the first one is the SYNTHETIC banner that :func:`am3f.reproduce.setup`
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
                            allow_errors=False)  # widget state: dropped by normalise
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

    from .reproduce import NOTEBOOKS, notebooks_dir
    from .utils import progress

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
