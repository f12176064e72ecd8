"""Numbers in README.md and docs/*.md are read from figures/, never retyped (issue 30).

* Generated blocks (scripts/front_page.py: the README's results table, tables included from figures/)
  are what the script writes now (`front_page.py --check`).
* Every other number with 3 or 4 decimals in the prose (fenced code, generated blocks and blocks
  marked ``<!-- history -->`` ... ``<!-- end history -->`` aside) appears in the text of figures/:
  a number typed by hand that is not (or no longer) in figures/ fails here.
* Every relative link of README.md and docs/*.md resolves to a file of the checkout.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from urllib.parse import unquote

import pytest

from conftest import REPO

SCRIPT = REPO / "scripts" / "front_page.py"
NUMBER = re.compile(r"(?<![\d.])[-+−]?\d\.\d{3,4}(?![\d])")
FIGURE_NUMBER = re.compile(r"(?<![\d.])\d+\.\d+(?![\d])")


def _front_page():
    spec = importlib.util.spec_from_file_location("front_page", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def pages():
    """README.md and every docs page written by hand (docs/cli.md is generated from the parser)."""
    return [REPO / "README.md"] + sorted(p for p in (REPO / "docs").glob("*.md") if p.name != "cli.md")


def prose(text: str) -> str:
    """The text a reader takes as typed by hand: no fenced code, generated or history block, no comment."""
    text = re.sub(r"<!-- generated: .*?<!-- end generated -->", "", text, flags=re.S)
    text = re.sub(r"<!-- history -->.*?<!-- end history -->", "", text, flags=re.S)
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.S | re.M)
    text = re.sub(r"`[^`]*`", "", text)  # inline code (a setting, not a result), also across lines
    return re.sub(r"<!--.*?-->", "", text, flags=re.S)


def figure_numbers() -> set[str]:
    files = [*(REPO / "figures").rglob("*.md"), *(REPO / "figures").rglob("*.csv")]
    found = set()
    for f in files:
        found |= set(FIGURE_NUMBER.findall(f.read_text(encoding="utf-8").replace("−", "-")))
    return found


def unsourced(text: str, known: set[str]) -> list[str]:
    return [n for n in NUMBER.findall(prose(text)) if n.replace("−", "-").lstrip("+-") not in known]


def test_generated_blocks_are_up_to_date():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--check"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_readme_has_the_generated_results_table():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert "<!-- generated: scripts/front_page.py summary -->" in text
    assert "Hold-out UF1" in text and "docs/protocol.md" in text


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_every_number_in_the_prose_is_in_figures(page):
    bad = unsourced(page.read_text(encoding="utf-8"), figure_numbers())
    assert not bad, f"{page.relative_to(REPO)}: numbers not found in figures/ (read them from figures/, " \
                    f"generate them with scripts/front_page.py, or mark history): {bad}"


def test_a_retyped_wrong_number_is_caught():
    known = figure_numbers()
    page = (REPO / "README.md").read_text(encoding="utf-8")
    assert "0.7021" in known and not unsourced("composite UF1 0.7021 [0.636, 0.762]", known)
    assert unsourced("composite UF1 0.7012", known) == ["0.7012"]
    assert unsourced("composite UF1 −0.7059 and 0.0000", known - {"0.7059", "0.0000"}) == ["−0.7059", "0.0000"]
    # inside a generated block, a code block or a history block a number is not prose
    assert not unsourced("<!-- history -->\n0.1234\n<!-- end history -->\n```bash\nx 0.4321\n```\n", known)
    assert page.count("<!-- generated: scripts/front_page.py") == page.count("<!-- end generated -->")


def test_generated_blocks_follow_a_remade_leaderboard(tmp_path, monkeypatch):
    """A remade figures/leaderboard.csv with other column names and a Hold-out UF1 column shows it."""
    mod = _front_page()
    figs = tmp_path / "figures"
    figs.mkdir()
    for name in ("results.csv", "ablations.csv"):
        (figs / name).write_text((REPO / "figures" / name).read_text(encoding="utf-8"), encoding="utf-8")
    (figs / "leaderboard.csv").write_text(
        "Method,Schedule,Honest UF1,Hold-out UF1,Honest UAR,Δ UF1 vs AM3F-FlowNet (ours),Seeds\n"
        "RCN,tuned (cross-fitted),\"0.7111 [0.650, 0.770]\",\"0.6999 [0.580, 0.790]\",0.7,"
        "\"+0.0100 [-0.030, 0.050], p 0.6\",1\n", encoding="utf-8")
    monkeypatch.setattr(mod, "FIGURES", figs)
    table = mod.summary()
    assert "| RCN | tuned (cross-fitted) | 0.7111 [0.650, 0.770] | 0.6999 [0.580, 0.790] | 1 |" in table
    assert "predates the hold-out column" not in table
    assert "interval contains 0 for 1 of the 1" in mod.leaderboard_verdicts()


LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", [*pages(), REPO / "docs" / "cli.md"], ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    broken = []
    for m in LINK.finditer(text):
        url = m[1] or m[2]
        if re.match(r"[a-z]+:|#|//", url):
            continue
        path = unquote(url.split("#")[0])
        if not (page.parent / path).exists():
            broken.append(url)
    assert not broken, f"{page.relative_to(REPO)}: broken relative links {broken}"
