"""The notebooks are committed with their outputs, so they can be read without running them.

Those outputs come from `am3f reproduce --in-place` (synthetic set, default parameters) and are
checked by strict nbval (`--nbval --nbval-sanitize-with notebooks/nbval_sanitize.cfg`, the README's
test command). Here: they are synthetic, name no real data, are normalised and small, every nbval
marker says why, re-execution is byte-identical, and strict nbval catches an edited number.
"""

import base64
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys

import nbformat
import pytest

from am3f.app import reproduce
from am3f.app.cli import main

from conftest import REPO

NOTEBOOK_DIR = REPO / "notebooks"
SANITIZE = NOTEBOOK_DIR / "nbval_sanitize.cfg"
NBVAL_TAGS = ("nbval-ignore-output", "nbval-skip", "nbval-raises-exception", "raises-exception",
              "nbval-check-output")


def _read(name):
    return nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)


@pytest.mark.parametrize("name", reproduce.NOTEBOOKS)
def test_committed_outputs_are_synthetic_and_name_no_real_data(name):
    nb = _read(name)
    assert reproduce.output_problems(nb, name) == []
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), f"{name}: not executed top to bottom in one go"


# what measures the machine rather than the code: a slower machine gives other numbers, and strict
# nbval would fail (core-seconds per seed, wall times, durations, rates)
TIMING = re.compile(r"core-s|\bs\s*/\s*(seed|fold|epoch)\b|\bseconds?\b|\bwall\b|\belapsed\b|"
                    r"\b\d+(\.\d+)?\s?(s|ms|min)\b(?![-\w])|\bit/s\b", re.I)


def timing_problems(nb, name: str) -> list[str]:
    """Outputs that strict nbval compares (cells without an nbval-ignore-output / skip tag) and that
    show a timing."""
    problems = []
    for i, cell in enumerate(nb.cells):
        tags = cell.metadata.get("tags", [])
        if cell.cell_type != "code" or {"nbval-ignore-output", "nbval-skip"} & set(tags):
            continue
        for out in cell.get("outputs", []):
            texts = [out.text] if out.output_type == "stream" else [
                "".join(v) if isinstance(v, list) else v for k, v in out.get("data", {}).items()
                if k.startswith("text/")]
            for text in texts:
                for line in text.splitlines():
                    if TIMING.search(line):
                        problems.append(f"{name} cell {i}: {line.strip()[:120]}")
    return problems


@pytest.mark.parametrize("name", reproduce.NOTEBOOKS)
def test_compared_outputs_show_no_timings(name):
    """Timings and core-seconds live in run.json and the written tables, not in checked outputs."""
    assert timing_problems(_read(name), name) == []


def test_timing_check_catches_core_seconds():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("display(table)")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": "Params core-s / seed\n1,683  0"}),
                    nbformat.v4.new_output("stream", name="stdout", text="fold 3 took 12.5 s\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="composite 32 0.7258 [0.694, 0.775] 1.0x\n")]
    nb.cells = [cell]
    assert len(timing_problems(nb, "nb")) == 2


def test_output_checks_catch_real_data():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                           text="real data: 442 samples in ../shared/data/megc2019-composite\n")]
    nb.cells = [cell]
    problems = " ".join(reproduce.output_problems(nb, "nb"))
    assert "megc2019-composite" in problems and "shared/data" in problems and "SYNTHETIC" in problems
    assert "real data" in problems


@pytest.mark.parametrize("name", reproduce.NOTEBOOKS)
def test_committed_notebooks_are_normalised(name):
    """No execution timestamps, durations, kernel versions or widget ids: re-normalising changes nothing."""
    text = (NOTEBOOK_DIR / f"{name}.ipynb").read_text()
    nb = nbformat.reads(text, as_version=4)
    assert set(nb.metadata) == {"kernelspec", "language_info"}
    for cell in nb.cells:
        assert set(cell.metadata) <= set(reproduce.KEPT_CELL_METADATA), cell.metadata
        for out in cell.get("outputs", []):
            assert not set(out.get("data", {})) & set(reproduce.DROPPED_MIME)
            assert "transient" not in out.get("metadata", {})
    assert nbformat.writes(reproduce.normalise(nb)) + "\n" == text


def _kernel_info_language_info() -> dict:
    """What the python3 kernel answers to kernel_info (what JupyterLab writes as language_info)."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return kc.kernel_info(reply=True, timeout=60)["content"]["language_info"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_normalised_metadata_is_what_jupyterlab_writes_on_open():
    """JupyterLab 4, when it opens a notebook and starts its kernel, sets kernelspec to the kernel spec
    the server lists and language_info to the kernel's kernel_info reply (it marks the notebook dirty,
    and autosave rewrites it, only when they differ from the stored ones)."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    assert reproduce.KERNELSPEC == {"name": "python3", "display_name": spec.display_name, "language": spec.language}
    info = _kernel_info_language_info()
    assert info == {**reproduce.LANGUAGE_INFO, "version": platform.python_version()}


def test_committed_notebook_metadata_is_what_jupyterlab_writes():
    """Opening a committed notebook in JupyterLab leaves it clean: its metadata already is what
    JupyterLab would write (see am3f.app.reproduce.KERNELSPEC); all made by one kernel (one Python)."""
    versions = set()
    for name in reproduce.NOTEBOOKS:
        nb = _read(name)
        assert (nb.nbformat, nb.nbformat_minor) == (4, reproduce.NBFORMAT_MINOR), name
        assert all(cell.get("id") for cell in nb.cells), f"{name}: a cell without an id"
        assert dict(nb.metadata.kernelspec) == reproduce.KERNELSPEC, (name, nb.metadata.kernelspec)
        info = dict(nb.metadata.language_info)
        version = info.pop("version", "")
        assert info == reproduce.LANGUAGE_INFO, (name, nb.metadata.language_info)
        assert re.fullmatch(r"3\.\d+\.\d+\w*", version), (name, version)
        versions.add(version)
    assert len(versions) == 1, f"notebooks executed by different Pythons: {versions}"


def test_notebooks_stay_small():
    from PIL import Image

    total = sum(p.stat().st_size for p in NOTEBOOK_DIR.glob("*.ipynb"))
    assert total < 4_000_000, f"notebooks/ holds {total / 1e6:.1f} MB of notebooks"
    for path in NOTEBOOK_DIR.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                png = out.get("data", {}).get("image/png")
                if png:
                    img = Image.open(io.BytesIO(base64.b64decode(png)))
                    assert img.info.get("dpi", (72, 72))[0] <= 101 and img.width <= 2000, (path.name, img.size)


def test_every_nbval_marker_says_why():
    """Cells nbval does not check (fully) carry a tag and a one-line reason in their metadata."""
    marked = []
    for name in reproduce.NOTEBOOKS:
        for i, cell in enumerate(_read(name).cells):
            tags = [t for t in cell.metadata.get("tags", []) if t in NBVAL_TAGS]
            assert not re.search(r"^\s*#\s*(NBVAL|PYTEST_VALIDATE)_", cell.source, re.M), \
                f"{name} cell {i}: use a metadata tag with a reason, not a comment marker"
            if tags:
                reason = cell.metadata.get("nbval", {}).get("reason", "")
                assert len(reason) > 20, f"{name} cell {i}: {tags} without metadata nbval.reason"
                marked.append((name, i))
    assert len(marked) <= 4, f"more cells excluded from strict nbval than expected: {marked}"


def test_kernel_env_switches_real_data_off(monkeypatch, tmp_path):
    monkeypatch.setenv("AM3F_DATA", "/somewhere/real")
    env = reproduce.kernel_env(tmp_path / "out")
    assert "AM3F_DATA" not in env and env["AM3F_OUT"] == str(tmp_path / "out")
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["AM3F_PROGRESS"] == "0"


def test_kernel_env_pins_the_kernels_to_avx2_where_the_cpu_has_it(monkeypatch, tmp_path):
    """The committed outputs and their nbval check run the same kernels on an AVX-512 and an AVX2 machine."""
    for name in reproduce.AVX2_PINS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(reproduce, "cpu_has_avx2", lambda: True)
    env = reproduce.kernel_env(tmp_path / "out")
    assert {k: env[k] for k in reproduce.AVX2_PINS} == {"ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2",
                                                       "MKL_CBWR": "AVX2"}
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")  # a value the user set wins
    assert reproduce.kernel_env(tmp_path / "out")["ATEN_CPU_CAPABILITY"] == "default"
    monkeypatch.setattr(reproduce, "cpu_has_avx2", lambda: False)  # no AVX2 (another architecture): no pin
    assert "DNNL_MAX_CPU_ISA" not in reproduce.kernel_env(tmp_path / "out")


def test_in_place_refuses_data_out_and_full_profile(capsys):
    for extra in (["--data", "x"], ["--out", "y"], ["--profile", "full"]):
        assert main(["reproduce", "--in-place", *extra]) == 2
        assert "--in-place" in capsys.readouterr().err


def test_reexecution_without_code_change_is_byte_identical(tmp_path, monkeypatch):
    """Timestamps, the temporary output folder and the kernel's version do not reach the file."""
    monkeypatch.setenv("AM3F_DATA", "/somewhere/real")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell('data_root = ""')
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(
        "import os, time\n"
        "print('SYNTHETIC', os.environ['AM3F_OUT'] + '/figures', os.environ.get('AM3F_DATA'))\n"
        "time.sleep(0.01)\n"
        "{'a': 1}")]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    first = nbformat.writes(reproduce.execute_notebook(path, tmp_path / "run1" / "out"))
    second = nbformat.writes(reproduce.execute_notebook(path, tmp_path / "run2" / "out"))
    assert first == second
    assert "SYNTHETIC out/figures None" in first and "run1" not in first
    # the metadata JupyterLab would write on open: the kernel's own Python version included
    language_info = {**reproduce.LANGUAGE_INFO, "version": platform.python_version()}
    assert nbformat.reads(first, 4).metadata == {"kernelspec": reproduce.KERNELSPEC, "language_info": language_info}
    assert reproduce.output_problems(nbformat.reads(first, 4), "tiny") == []


def _nbval(folder, notebook):
    """Run strict nbval on one notebook in a folder of its own (own output folder: a fresh run)."""
    env = reproduce.kernel_env(folder / "out")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "--nbval", "--nbval-sanitize-with", str(SANITIZE), str(notebook),
         "-q", "-p", "no:cacheprovider", "--rootdir", str(folder)],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_strict_nbval_fails_when_a_committed_number_is_edited(tmp_path):
    name = "02_train_loso"
    good, bad = tmp_path / "good", tmp_path / "bad"
    for d in (good, bad):
        d.mkdir()
        shutil.copy(NOTEBOOK_DIR / f"{name}.ipynb", d)
    nb = json.loads((bad / f"{name}.ipynb").read_text())
    edited = None
    for cell in nb["cells"]:
        if cell["cell_type"] != "code" or any(t in NBVAL_TAGS for t in cell["metadata"].get("tags", [])):
            continue
        for out in cell["outputs"]:
            if out["output_type"] == "stream":
                text = "".join(out["text"])
                m = re.search(r"\d\.\d{4}", text)
                if m:
                    number = m.group(0)
                    new = number[:-1] + str((int(number[-1]) + 1) % 10)
                    out["text"] = text[:m.start()] + new + text[m.end():]
                    edited = (number, new)
                    break
        if edited:
            break
    assert edited, f"{name}: no 4-decimal number in a checked stream output to edit"
    (bad / f"{name}.ipynb").write_text(json.dumps(nb, indent=1) + "\n")
    runs = {"good": _nbval(good, good / f"{name}.ipynb"), "bad": _nbval(bad, bad / f"{name}.ipynb")}
    logs = {k: p.communicate(timeout=600)[0] for k, p in runs.items()}
    assert runs["good"].returncode == 0, logs["good"][-3000:]
    assert runs["bad"].returncode == 1, logs["bad"][-3000:]
    assert re.search(r"\b1 failed\b", logs["bad"]) and edited[0] in logs["bad"] and edited[1] in logs["bad"]


# a pandas row number (0, 1, 2 ...) in the first column of a shown table: no column of a results table
ROW_NUMBER_INDEX = re.compile(r"<tr>\s*<th>0</th>")


@pytest.mark.parametrize("name", reproduce.NOTEBOOKS)
def test_shown_tables_have_no_row_number_column(name):
    shown = [i for i, cell in enumerate(_read(name).cells) if cell.cell_type == "code"
             for out in cell.get("outputs", []) if ROW_NUMBER_INDEX.search(out.get("data", {}).get("text/html", ""))]
    assert not shown, f"{name}: cell(s) {shown} show a pandas index; display(writers.display_table(df))"
