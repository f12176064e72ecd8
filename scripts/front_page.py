#!/usr/bin/env python
"""Write the numbers of README.md and docs/*.md from figures/, so no number is retyped.

    python scripts/front_page.py            # rewrite every generated block
    python scripts/front_page.py --check    # exit 1 if a block is stale (tests/test_docs_numbers.py)

A generated block sits between two marker comments; the opening one names what it holds:

    <!-- generated: scripts/front_page.py summary -->                 the README's results table
    <!-- generated: scripts/front_page.py include figures/X.md -->    figures/X.md verbatim
    <!-- generated: scripts/front_page.py leaderboard-verdicts -->     what figures/leaderboard.csv says
    <!-- generated: scripts/front_page.py leaderboard-compact -->      figures/leaderboard.csv in a page's width
    <!-- end generated -->

The summary reads figures/results.csv (AM3F-FlowNet), figures/ablations.csv (STSTNet from scratch) and
figures/leaderboard.csv (every row), finding columns by name, so a remade leaderboard with a
`Hold-out UF1` column shows that column without a change here.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIGURES = REPO / "figures"
BLOCK = re.compile(r"(?P<open><!-- generated: scripts/front_page\.py (?P<what>[^>]*?) -->\n)(?P<body>.*?)"
                   r"(?P<close><!-- end generated -->)", re.S)


def pages() -> list[Path]:
    """The Markdown pages that may hold generated blocks (docs/cli.md is generated whole elsewhere)."""
    return [REPO / "README.md"] + sorted(p for p in (REPO / "docs").glob("*.md") if p.name != "cli.md")


# ----------------------------------------------------------------------------------------- csv helpers
def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9δ]+", " ", name.lower()).strip()


def read_csv(name: str) -> tuple[list[str], list[dict[str, str]]]:
    with open(FIGURES / name, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def find_column(columns: list[str], *must: str, avoid: tuple[str, ...] = (), required: bool = True) -> str | None:
    """The first column whose normalised name contains every word of ``must`` and none of ``avoid``."""
    for col in columns:
        n = _norm(col)
        if all(m in n for m in must) and not any(a in n for a in avoid):
            return col
    if required:
        raise SystemExit(f"front_page.py: no column with {must} (avoiding {avoid}) in {columns}")
    return None


def _cell(text: str | None) -> str:
    text = " ".join((text or "—").split()) or "—"
    return text.replace("|", "\\|")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


# --------------------------------------------------------------------------------------------- blocks
def summary() -> str:
    """The README's one results table: our two declared 5-seed rows, then the leaderboard's tuned rows (every
    architecture tuned alike on training subjects only) and their ensemble; the other rows are on the
    leaderboard page."""
    rcols, results = read_csv("results.csv")
    acols, ablations = read_csv("ablations.csv")
    lcols, board = read_csv("leaderboard.csv")
    r_key, a_key = rcols[0], acols[0]
    full = next(r for r in results if r[r_key] == "full")
    scratch = next(r for r in ablations if r[a_key] == "ststnet")
    r_uf1, r_hold, r_seeds = (find_column(rcols, "composite", "uf1"), find_column(rcols, "hold", "uf1"),
                              find_column(rcols, "seed"))
    a_uf1, a_hold, a_seeds = (find_column(acols, "composite", "uf1"), find_column(acols, "hold", "uf1"),
                              find_column(acols, "seed"))
    l_method = find_column(lcols, "method", required=False) or find_column(lcols, "model", required=False) or lcols[0]
    l_sched = find_column(lcols, "schedule", required=False) or find_column(lcols, "protocol")
    l_hold = find_column(lcols, "hold", "uf1", required=False)
    l_uf1 = (find_column(lcols, "honest", "uf1", avoid=("hold",), required=False)
             or find_column(lcols, "uf1", avoid=("hold", "oracle", "published", "δ", "vs")))
    l_seeds = find_column(lcols, "seed", avoid=("core", "per seed"), required=False)

    lines = [_row(["Method", "Schedule", "Composite UF1 [95 %]", "Hold-out UF1 (clean) [95 %]", "Seeds"]),
             "| --- | --- | --- | --- | --- |",
             _row(["**AM3F-FlowNet (ours)**", "ours (declared)", full[r_uf1], full[r_hold], full[r_seeds]]),
             _row(["STSTNet, trained from scratch", "ours (declared)", scratch[a_uf1], scratch[a_hold],
                   scratch[a_seeds]])]
    for r in (r for r in board if "tuned" in r[l_sched]):
        lines.append(_row([r[l_method], r[l_sched], r[l_uf1], r[l_hold] if l_hold else "—",
                           r[l_seeds] if l_seeds else "—"]))
    lines.append("")
    lines.append("The first two rows: mean ± std over the seeds, then the 95 % subject-bootstrap interval. "
                 "Tuned rows: one seed each, every architecture tuned the same way on training subjects only "
                 "(cross-fitted); authors' recipes and our declared schedule for every peer: "
                 "[docs/leaderboard.md](docs/leaderboard.md).")
    if not l_hold:
        lines.append("The leaderboard's committed table predates the hold-out column, so its rows show none "
                     "yet (\"—\").")
    return "\n".join(lines) + "\n"


def include(name: str) -> str:
    path = (FIGURES.parent / name).resolve()
    if FIGURES not in path.parents:
        raise SystemExit(f"front_page.py: include only from figures/, not {name}")
    return path.read_text(encoding="utf-8").rstrip("\n") + "\n"


def _interval(text: str) -> tuple[float, float] | None:
    m = re.search(r"\[\s*([-+−]?\d*\.?\d+)\s*,\s*([-+−]?\d*\.?\d+)\s*\]", text or "")
    return (float(m[1].replace("−", "-")), float(m[2].replace("−", "-"))) if m else None


def leaderboard_verdicts() -> str:
    """Plain sentences read from figures/leaderboard.csv: the best honest row and where Δ excludes 0."""
    lcols, board = read_csv("leaderboard.csv")
    l_method = find_column(lcols, "method", required=False) or lcols[0]
    l_sched = find_column(lcols, "schedule", required=False) or find_column(lcols, "protocol")
    l_uf1 = (find_column(lcols, "honest", "uf1", avoid=("hold",), required=False)
             or find_column(lcols, "uf1", avoid=("hold", "oracle", "published", "δ", "vs")))
    l_delta = find_column(lcols, "δ", "uf1", required=False) or find_column(lcols, "vs", "uf1")

    def score(r):
        m = re.match(r"\s*([-+−]?\d*\.\d+)", r[l_uf1] or "")
        return float(m[1]) if m else float("-inf")

    best = max(board, key=score)
    named = [r for r in board if _interval(r[l_delta])]
    apart = [r for r in named if not (_interval(r[l_delta])[0] <= 0 <= _interval(r[l_delta])[1])]
    lines = [f"* Highest honest UF1: {best[l_method]} ({best[l_sched]}), {best[l_uf1]}."]
    lines.append(f"* Δ UF1 against tuned AM3F-FlowNet: the 95 % interval contains 0 for {len(named) - len(apart)} "
                 f"of the {len(named)} other rows" + (
                     "." if not apart else "; it excludes 0 for " + "; ".join(
                         f"{r[l_method]} ({r[l_sched]}): {r[l_delta]}" for r in apart) + "."))
    return "\n".join(lines) + "\n"


def leaderboard_compact() -> str:
    """figures/leaderboard.csv as a page column holds it (the site's is ~740 px): the scores in one table,
    the published numbers and their protocols in a second (one row per method), the rest in figures/."""
    lcols, board = read_csv("leaderboard.csv")
    l_method = find_column(lcols, "method", required=False) or lcols[0]
    l_sched = find_column(lcols, "schedule", required=False) or find_column(lcols, "protocol")
    l_uf1 = (find_column(lcols, "honest", "uf1", avoid=("hold",), required=False)
             or find_column(lcols, "uf1", avoid=("hold", "oracle", "published", "δ", "vs")))
    l_hold = find_column(lcols, "hold", "uf1", required=False)
    l_oracle = find_column(lcols, "oracle", required=False)
    l_delta = find_column(lcols, "δ", "uf1", required=False) or find_column(lcols, "vs", "uf1")
    l_pub = find_column(lcols, "published", "uf1", required=False)
    l_pub_protocol = find_column(lcols, "published", "protocol", required=False)

    lines = [_row(["Method", "Schedule", "Honest UF1 [95 %]", "Hold-out UF1 (clean) [95 %]", "Oracle UF1",
                   "Δ UF1 vs tuned AM3F-FlowNet"]), "| --- | --- | --- | --- | --- | --- |"]
    for r in board:
        oracle = (r[l_oracle] or "—").split(" / ")[0] if l_oracle else "—"
        lines.append(_row([r[l_method], r[l_sched], r[l_uf1], r[l_hold] if l_hold else "—", oracle, r[l_delta]]))
    lines.append("")
    if not l_hold:
        lines += ["The committed leaderboard predates the hold-out column, so its rows show none yet (\"—\").", ""]
    if l_pub and l_pub_protocol:
        lines += ["What the authors published, and how (one row per method):", "",
                  _row(["Method", "Published UF1 / UAR", "Published protocol"]), "| --- | --- | --- |"]
        seen = set()
        for r in board:
            if r[l_method] in seen or (r[l_pub] or "—") in ("—", "--", ""):
                continue
            seen.add(r[l_method])
            lines.append(_row([r[l_method], r[l_pub], r[l_pub_protocol]]))
        lines.append("")
    lines.append("Recipes, parameters and core-seconds per seed of every row: the full table, "
                 "[figures/leaderboard.md](../figures/leaderboard.md).")
    return "\n".join(lines) + "\n"


def render(what: str) -> str:
    what = what.strip()
    if what == "summary":
        return summary()
    if what == "leaderboard-verdicts":
        return leaderboard_verdicts()
    if what == "leaderboard-compact":
        return leaderboard_compact()
    if what.startswith("include "):
        return include(what.split(None, 1)[1])
    raise SystemExit(f"front_page.py: unknown generated block {what!r}")


def update(text: str) -> str:
    return BLOCK.sub(lambda m: m["open"] + render(m["what"]) + m["close"], text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if any generated block is stale; write nothing")
    args = ap.parse_args(argv)
    stale = []
    for page in pages():
        text = page.read_text(encoding="utf-8")
        new = update(text)
        if new != text:
            stale.append(page.relative_to(REPO))
            if not args.check:
                page.write_text(new, encoding="utf-8")
    if args.check:
        for s in stale:
            print(f"stale generated block in {s}: run python scripts/front_page.py", file=sys.stderr)
        return 1 if stale else 0
    for s in stale:
        print(f"rewrote {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
