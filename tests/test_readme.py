"""Every command in the README and its documentation pages works as written.

The README is the front page; what it used to hold lives in docs/*.md (DOCS, in reading order), so "the README"
below means the README followed by those pages. Each command of their ```bash blocks must match exactly one rule
below: either it is run (in a scratch folder, in README order, cheap ones as written, costly ones with small
folds/epochs appended) or it is skipped with a stated reason. A new README command without a rule fails the
test, so the README cannot drift from what works.
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

from am3f.app import reproduce

from conftest import REPO, shared_data_dir

README = REPO / "README.md"
# the pages that took over the README's sections, in the order their commands run (data.md writes
# synthetic-set and flow.png, which training.md's commands read)
DOCS = [REPO / "docs" / f"{name}.md" for name in
        ("usage", "results", "protocol", "leaderboard", "data", "training", "engine", "your-model")]
PAGES = [README, *DOCS]
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
    # one candidate (the declared schedule) instead of the 8 of the default grid: 2 halves x 5 CV folds
    Rule(r"^am3f tune .*--data \.\./shared/data/megc2019-composite", append=" --grid lr=0.01", needs_real_data=True,
         expect="recipes.json"),
    Rule(r"^am3f score runs/am3f-composite$", needs_real_data=True, expect="UF1"),
    Rule(r"^python benchmarks/bench_loso\.py", skip="a benchmark (minutes per seed): not a test"),
    Rule(r"^am3f evaluate-weights .*ststnet-reference", needs_real_data=True),
    Rule(r"^am3f score runs/ststnet-published$", needs_real_data=True, expect="0.7209"),
    Rule(r"^am3f compare runs/no_mofrw runs/ststnet-scratch$", expect="UF1"),
    Rule(r"^am3f reproduce --profile full ", skip="about 92 minutes; the quick profile runs the same notebooks"),
    Rule(r"^am3f reproduce --profile leaderboard ",
         skip="hours on 2 cores; the quick profile runs notebook 09 on the synthetic set"),
    Rule(r"^mkdir -p out && papermill notebooks/02_train_loso\.ipynb ", needs_real_data=True),
    Rule(r"^am3f flow onset\.jpg apex\.jpg ", needs_real_data=True),
    Rule(r"^am3f flow pair\.gif ", needs_real_data=True),
    Rule(r"^am3f extract ", skip="needs a licensed raw CASME II copy; tests/test_extract.py runs it on a fake tree"),
    Rule(r"^am3f synth --out synthetic-set "),
    Rule(r"^am3f data verify \.\./shared/data/megc2019-composite$", needs_real_data=True,
         expect="442 of 442 samples identical"),
    Rule(r"^am3f variants$", expect="no_mofrw"),
    Rule(r"^am3f models$", expect="htnet"),
    Rule(r"^am3f loso .*--data synthetic-set ", append=SMALL),
    Rule(r"^am3f train --data synthetic-set ", append=" --epochs 1"),
    Rule(r"^am3f predict --checkpoint model\.pt flow\.png flow\.npz$", needs_real_data=True, expect="prediction"),
    Rule(r"^am3f predict --checkpoint model\.pt --onset onset\.jpg --apex apex\.jpg$", needs_real_data=True),
]


def readme_commands() -> list[str]:
    """Shell commands of every ```bash block of the README and DOCS, continuation lines joined, comments
    dropped."""
    cmds = []
    text = "\n".join(p.read_text(encoding="utf-8") for p in PAGES)
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for cmd in block.replace("\\\n", " ").splitlines():
            cmd = " ".join(shlex.split(cmd, comments=True)) if "#" in cmd else " ".join(cmd.split())
            if cmd:
                cmds.append(cmd)
    return cmds


# ----------------------------------------------------------------------------- what the README states
# The README describes the reproduction profiles and the notebooks in tables; these tests hold those
# tables (and the prose next to them) to the code, so a change of am3f.app.reproduce.PROFILES or of
# notebooks/ that the README does not follow fails here.
NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split())}
PROVENANCE = REPO / "figures" / "PROVENANCE.md"


def _count(word: str) -> int:
    return int(word) if word.isdigit() else NUMBER_WORDS[word.lower()]


def _range(cell: str) -> list[int]:
    """'0-4' -> [0, 1, 2, 3, 4]; '7' -> [7] (hyphen or en dash)."""
    m = re.fullmatch(r"(\d+)(?:\s*[-–]\s*(\d+))?", cell.strip())
    assert m, f"not a number or a range: {cell!r}"
    return list(range(int(m[1]), int(m[2] or m[1]) + 1))


def readme_table(first_header: str) -> list[dict[str, str]]:
    """Rows of the Markdown table (README or DOCS) whose first column is headed ``first_header``."""
    lines = "\n".join(p.read_text(encoding="utf-8") for p in PAGES).splitlines()
    found = []
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_header and i + 1 < len(lines) \
                and lines[i + 1].startswith("| ---"):
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(dict(zip(cells, (c.strip() for c in row.strip().strip("|").split("|")))))
            found.append(rows)
    assert len(found) == 1, f"README: {len(found)} tables headed {first_header!r}, expected one"
    return found[0]


def readme_sections() -> list[str]:
    return [s for p in PAGES for s in re.split(r"^#+ ", p.read_text(encoding="utf-8"), flags=re.M)]


def notebook_files() -> list[str]:
    return [p.stem for p in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))]


def _declared_epochs() -> int:
    try:
        from am3f.training.recipe import TrainConfig
    except ImportError:  # before the recipe had a module of its own
        from am3f.training.fit import TrainConfig
    return TrainConfig().epochs


def test_readme_profile_table_matches_the_code():
    rows = {r["profile"].strip("`"): r for r in readme_table("profile")}
    assert set(rows) == set(reproduce.PROFILES), "one README row per profile of am3f.app.reproduce.PROFILES"
    for name, p in reproduce.PROFILES.items():
        row, where = rows[name], f"README, profile {name!r}"
        runs = p.get("notebooks", reproduce.NOTEBOOKS)
        assert _range(row["notebooks"]) == [int(n[:2]) for n in runs], f"{where}: notebooks"
        seeds = row["seeds"]
        assert _range(re.match(r"[\d\s\-–]+", seeds).group()) == list(p["seeds"]), f"{where}: seeds"
        fewer = {k: _range(v) for k, v in re.findall(r"`([\w.-]+)`: ([\d\-–]+)", seeds)}
        assert fewer == {k: list(v) for k, v in p.get("variant_seeds", {}).items()}, f"{where}: per-variant seeds"
        if p["folds"]:
            assert row["folds"] == p["folds"], f"{where}: folds"
        else:
            assert row["folds"].startswith("all"), f"{where}: every fold"
        if p["epochs"]:
            assert row["epochs"] == str(p["epochs"]), f"{where}: epochs"
        else:  # 0 = the declared schedule
            assert "declared" in row["epochs"] and str(_declared_epochs()) in row["epochs"], f"{where}: epochs"
        named = set(re.findall(r"`([\w.-]+)`", row["what it trains"]))
        if name == "full":  # 15 entries: the main model, its ablation variants, STSTNet
            ablations = [v for v in p["variants"] if v not in ("full", "ststnet")]
            m = re.search(r"\b(\w+) ablation variants", row["what it trains"])
            assert m and _count(m[1]) == len(ablations), f"{where}: number of ablation variants"
            assert ("STSTNet" in row["what it trains"]) == ("ststnet" in p["variants"]), where
            assert named <= set(p["variants"]), f"{where}: names no variant of the profile"
        else:
            assert named == set(p.get("variants", [])) | set(p.get("leaderboard", [])), f"{where}: what it trains"


def test_readme_profile_times_match_the_provenance():
    """The wall times the README gives are the measured ones of figures/PROVENANCE.md."""
    prov = PROVENANCE.read_text()
    rows = {r["profile"].strip("`"): r for r in readme_table("profile")}
    full = float(re.search(r"Wall time of the `full` profile, from scratch: (?:[\d,]+ s \()?([\d.]+) min", prov)[1])
    board = int(re.search(r"Wall time of the `leaderboard` profile, from scratch: about (\d+) min", prov)[1])
    for name, minutes in (("full", round(full)), ("leaderboard", board)):
        m = re.search(r"about (\d+) min", rows[name]["time on 2 CPU cores"])
        assert m and int(m[1]) == minutes, f"README, profile {name!r}: time (PROVENANCE: {minutes} min)"


def test_readme_prose_about_the_full_profile_states_its_seeds():
    """Any section that mentions the full profile and says "N seeds" says the profile's number."""
    n = len(reproduce.PROFILES["full"]["seeds"])
    for section in readme_sections():
        if re.search(r"--profile full|`full` profile", section):
            for word in re.findall(r"\b(\d+|" + "|".join(NUMBER_WORDS) + r")\s+seeds?\b", section, re.I):
                assert _count(word) == n, f"README section {section.splitlines()[0]!r}: {word} seed(s), " \
                                          f"the full profile has {n}"


def test_readme_notebook_table_lists_every_notebook():
    assert list(reproduce.NOTEBOOKS) == notebook_files(), "am3f.app.reproduce.NOTEBOOKS vs notebooks/*.ipynb"
    assert [r["notebook"].strip("`") for r in readme_table("notebook")] == notebook_files()


def test_readme_layout_states_the_notebook_count_and_range():
    files = notebook_files()
    m = re.search(r"^notebooks/\s+(\w+) notebooks, (\d\d)[-–](\d\d)\b", README.read_text(), re.M)
    assert m, "README layout: 'notebooks/   N notebooks, 00-NN'"
    assert _count(m[1]) == len(files), f"README layout: {m[1]} notebooks, notebooks/ holds {len(files)}"
    assert (m[2], m[3]) == (files[0][:2], files[-1][:2]), "README layout: notebook range"
    for lo, hi in re.findall(r"notebooks? (\d\d)[-–](\d\d)\b", "\n".join(p.read_text() for p in PAGES)):
        assert int(hi) <= int(files[-1][:2]), f"README names notebooks {lo}-{hi}; the last is {files[-1]}"


def small_version(cmd: str, rule: Rule, shared: Path) -> str:
    # papermill: the README's full-size parameters, shrunk the same way as the CLI commands
    if "papermill " in cmd:
        cmd = cmd.replace('-p folds ""', '-p folds "0"').replace("-p epochs 0", "-p epochs 1")
    cmd = cmd.replace("notebooks/", f"{REPO}/notebooks/").replace("benchmarks/", f"{REPO}/benchmarks/")
    return cmd.replace("../shared/data", str(shared)) + rule.append


def test_readme_is_a_front_page():
    """At most 160 lines; it opens with the two commands, then links the pages that hold the rest."""
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 160
    first = re.search(r"```bash\n(.*?)```", text, re.S)
    assert first and text.index(first[0]) < text.index("\n## "), "the commands come before any section"
    for page in DOCS + [REPO / "docs" / "cli.md", REPO / "docs" / "api.md"]:
        assert page.is_file(), page
        assert f"](docs/{page.name})" in text, f"README does not link docs/{page.name}"
    assert "```python" not in text.split("## Repository layout")[-1], "the layout block is text"


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
    assert len(list(out.glob("[0-9][0-9]_*.ipynb"))) == len(reproduce.NOTEBOOKS)
    assert proc.stderr.strip() == "", proc.stderr[-2000:]  # quiet: no kernel log lines, no progress bars
