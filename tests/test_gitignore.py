"""What the README's example commands write into the checkout is git-ignored, so following the README
leaves `git status` clean."""

import re
import shlex
import shutil
import subprocess

import pytest
from test_readme import readme_commands

from conftest import REPO


def _outputs(cmd: str) -> list[str]:
    """Paths a README command writes, relative to where it runs (the checkout): its --out value, or
    papermill's output notebook."""
    args = shlex.split(cmd.split("&&")[-1])
    paths = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--out"]
    if args and args[0] == "papermill":
        paths.append(args[2])
    return [p for p in paths if not p.startswith(("/", ".."))]


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout")
def test_readme_example_outputs_are_ignored():
    outputs = sorted({p for cmd in readme_commands() for p in _outputs(cmd)})
    # the README names these (if it stops, this list shows what the test no longer covers)
    assert {"synthetic-set", "model.pt", "flow.png", "flow.npz", "runs/rcn", "out/02.ipynb"} <= set(outputs), outputs
    for path in outputs:
        # a name without a file extension is a folder: check a file inside it
        probe = path if re.search(r"\.\w+$", path) else f"{path}/x"
        proc = subprocess.run(["git", "check-ignore", "-q", "--no-index", probe], cwd=REPO)
        assert proc.returncode == 0, f"README output {path!r} is not git-ignored (.gitignore)"
    # and nothing committed is ignored by the patterns for them
    for tracked in ("figures/leaderboard.png", "notebooks/08_explorer.ipynb", "am3f/flow/synth.py"):
        assert subprocess.run(["git", "check-ignore", "-q", "--no-index", tracked], cwd=REPO).returncode == 1
