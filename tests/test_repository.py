"""The repository promises that README, CI and packaging agree; keep them honest."""

import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_readme_starts_with_install_and_test_commands():
    install, test = readme_commands()[:2]
    assert 'pip install -e ".[dev,site]"' in install
    assert install.endswith("&& am3f reproduce --profile quick"), "the first command also runs the main job"
    assert "pytest" in test


def test_ci_runs_the_readme_test_command_after_a_fresh_install():
    ci = (REPO / ".ci" / "run").read_text()
    test_command = readme_commands()[1]
    assert test_command in ci.splitlines()
    assert ci.index('pip install --quiet -e ".[dev,site]"') < ci.index(test_command)


def test_notebooks_are_checked_by_strict_nbval():
    test_command = readme_commands()[1]
    assert "--nbval " in test_command + " " and "--nbval-lax" not in test_command
    assert "--nbval-sanitize-with notebooks/nbval_sanitize.cfg" in test_command
    assert test_command.endswith("tests notebooks")


def test_dependencies_as_decided():
    deps = " ".join(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    assert "opencv-python-headless>=4.9,<5" in deps
    for name in ("torch", "torchvision", "grad-cam", "scikit-image", "papermill", "ipykernel", "tqdm", "seaborn"):
        assert name in deps
    assert "opencv-python>" not in deps and "opencv-contrib" not in deps


def test_no_licence_restricted_file_is_tracked():
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.splitlines()
    assert not [f for f in tracked if f.endswith((".pth", ".gif"))]
    assert not [f for f in tracked if f.startswith("flows/") or "/flows/" in f]


def test_committed_real_data_figures_are_aggregate_only():
    import subprocess

    tracked = subprocess.run(["git", "ls-files", "figures"], cwd=REPO, capture_output=True,
                             text=True).stdout.splitlines()
    real = [f for f in tracked if not f.startswith("figures/synthetic/")]
    assert "figures/results.md" in real
    per_sample_names = ("flow_gallery", "gradcam_sample", "gradcam_per_class")
    per_sample = [f for f in real if "/per-sample/" in f or Path(f).name.startswith(per_sample_names)]
    assert not per_sample, f"per-sample renderings of licence-restricted data are tracked: {per_sample}"
