"""Every command in the README works as written.

Each command of the README's ```bash blocks must match exactly one rule below: either it is run (in a
scratch folder, in README order, cheap ones as written, costly ones with small folds/epochs appended)
or it is skipped with a stated reason. A new README command without a rule fails the test, so the
README cannot drift from what works.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from am3f import reproduce

from conftest import REPO, shared_data_dir

README = REPO / "README.md"
SMALL = " --folds 0 --epochs 1"


@dataclass
class Rule:
    pattern: str  # regex that must match the command (re.search)
    skip: str = ""  # reason not to run it; empty = run it
    append: str = ""  # appended to make a costly command small
    expect: str = ""  # a string the output must contain
    needs_real_data: bool = False

    def matches(self, cmd: str) -> bool:
        return re.search(self.pattern, cmd) is not None


RULES = [
    Rule(r"^python3 -m venv .* && pip install -e .* && am3f reproduce --profile quick$",
         skip="install + main job: .ci/run installs; test_main_job_reproduce_quick runs the main job"),
    Rule(r"^python -m pytest ", skip="the test command itself (.ci/run runs it)"),
    Rule(r"^pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu$",
         skip="needs download.pytorch.org, out of reach of CI"),
    Rule(r'^pip install -e "\.\[dev,site\]"$', skip="the install step .ci/run performs"),
    Rule(r"^python scripts/build_site\.py$", skip="tests/test_site.py builds the site and checks every page and link"),
    Rule(r"^bash scripts/screenshot_site\.sh$", skip="needs Chromium, which CI does not install"),
    Rule(r"^am3f reproduce --in-place$",
         skip="rewrites the committed notebooks; tests/test_notebook_outputs.py checks re-execution is byte-identical"),
    Rule(r"^am3f loso .*--data \.\./shared/data/megc2019-composite", append=SMALL, needs_real_data=True),
    Rule(r"^am3f score runs/am3f-composite$", needs_real_data=True, expect="UF1"),
    Rule(r"^python benchmarks/bench_loso\.py", skip="a benchmark (minutes per seed): not a test"),
    Rule(r"^am3f evaluate-weights .*ststnet-reference", needs_real_data=True),
    Rule(r"^am3f score runs/ststnet-published$", needs_real_data=True, expect="0.7209"),
    Rule(r"^am3f compare runs/no_mofrw runs/ststnet-scratch$", expect="UF1"),
    Rule(r"^am3f reproduce --profile full ", skip="about an hour; the quick profile runs the same notebooks"),
    Rule(r"^mkdir -p out && papermill notebooks/02_train_loso\.ipynb ", needs_real_data=True),
    Rule(r"^am3f flow onset\.jpg apex\.jpg ", needs_real_data=True),
    Rule(r"^am3f flow pair\.gif ", needs_real_data=True),
    Rule(r"^am3f extract ", skip="needs a licensed raw CASME II copy; tests/test_extract.py runs it on a fake tree"),
    Rule(r"^am3f synth --out synthetic-set "),
    Rule(r"^am3f variants$", expect="no_mofrw"),
    Rule(r"^am3f models$", expect="htnet"),
    Rule(r"^am3f loso .*--data synthetic-set ", append=SMALL),
    Rule(r"^am3f train --data synthetic-set ", append=" --epochs 1"),
    Rule(r"^am3f predict --checkpoint model\.pt flow\.png flow\.npz$", needs_real_data=True, expect="prediction"),
    Rule(r"^am3f predict --checkpoint model\.pt --onset onset\.jpg --apex apex\.jpg$", needs_real_data=True),
]


def readme_commands() -> list[str]:
    """Shell commands of every ```bash block, continuation lines joined, comments dropped."""
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for cmd in block.replace("\\\n", " ").splitlines():
            cmd = " ".join(shlex.split(cmd, comments=True)) if "#" in cmd else " ".join(cmd.split())
            if cmd:
                cmds.append(cmd)
    return cmds


def small_version(cmd: str, rule: Rule, shared: Path) -> str:
    # papermill: the README's full-size parameters, shrunk the same way as the CLI commands
    if "papermill " in cmd:
        cmd = cmd.replace('-p folds ""', '-p folds "0"').replace("-p epochs 0", "-p epochs 1")
    cmd = cmd.replace("notebooks/", f"{REPO}/notebooks/").replace("benchmarks/", f"{REPO}/benchmarks/")
    return cmd.replace("../shared/data", str(shared)) + rule.append


def test_every_readme_command_has_exactly_one_rule():
    for cmd in readme_commands():
        hits = [r.pattern for r in RULES if r.matches(cmd)]
        assert len(hits) == 1, f"README command {cmd!r} matches {len(hits)} rules: {hits}"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A scratch folder with the inputs the README's commands name (onset.jpg, apex.jpg, pair.gif)."""
    ws = tmp_path_factory.mktemp("readme")
    gifs = shared_data_dir() / "real-onset-apex"
    if gifs.is_dir():
        with Image.open(gifs / "006_006_1_2.gif") as im:
            for i, name in enumerate(("onset.jpg", "apex.jpg")):
                im.seek(i)
                im.convert("RGB").save(ws / name, quality=98)
        shutil.copy(gifs / "s03_s03_po_11.gif", ws / "pair.gif")
    return ws


def _run(cmd: str, cwd: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "AM3F_PROGRESS": "0", **(env_extra or {})}
    env.pop("AM3F_DATA", None)
    return subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(readme_commands())))
def test_readme_command_runs(index, workspace):
    cmd = readme_commands()[index]
    rule = next(r for r in RULES if r.matches(cmd))
    if rule.skip:
        pytest.skip(rule.skip)
    shared = shared_data_dir()
    if rule.needs_real_data and not (shared / "megc2019-composite").is_dir():
        pytest.skip(f"real data not found at {shared}")
    proc = _run(small_version(cmd, rule, shared), workspace)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert rule.expect in proc.stdout, proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_main_job_reproduce_quick(tmp_path):
    """The second half of the README's first command: the main job on the embedded synthetic set."""
    proc = _run("am3f reproduce --profile quick", tmp_path, {"AM3F_OUT": str(tmp_path / "out")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "out" / "reproduce-quick"
    assert "SYNTHETIC" in proc.stdout and (out / "figures" / "results_synthetic.md").is_file()
    assert not (out / "runs" / "ststnet-published").exists(), "the quick profile must not read real data"
    assert len(list(out.glob("0*.ipynb"))) == len(reproduce.NOTEBOOKS)
    assert proc.stderr.strip() == "", proc.stderr[-2000:]  # quiet: no kernel log lines, no progress bars
