"""The composite tables (figures/results, ablations, cross_database: engine revision 2, 2026-12-05) regenerate from
their committed evidence (figures/runs/composite/, figures/runs/cross_database/) alone, byte for byte, with the
hold-out half's UF1 on every row; the evidence script refuses what it cannot use in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "composite_evidence.py"
TABLES = ("results", "ablations", "cross_database")


def test_composite_tables_regenerate_from_committed_evidence(tmp_path):
    out = tmp_path / "figures"
    out.mkdir()
    (out / "runs").symlink_to(REPO / "figures" / "runs")
    subprocess.run([sys.executable, str(SCRIPT), "--from-evidence", "--out", str(out)], check=True,
                   capture_output=True, cwd=REPO)
    for name in TABLES:
        table = (out / f"{name}.md").read_text()
        for suffix in ("md", "csv", "tex"):
            assert (out / f"{name}.{suffix}").read_text() == (REPO / "figures" / f"{name}.{suffix}").read_text(), name
        rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| Method")
                and not line.startswith("| Variant")]
        header = table.splitlines()[2]
        assert "Hold-out UF1" in header, name
        column = [c.strip() for c in header.split("|")].index("Hold-out UF1")
        assert all("[" in row.split("|")[column] for row in rows), name  # a value and its interval on every row


@pytest.mark.parametrize("args, words", [
    ([], "give --runs and --cross-runs"),
    (["--runs", "nowhere", "--cross-runs", "nowhere"], "nowhere"),
])
def test_evidence_script_refuses_in_one_line(tmp_path, args, words):
    done = subprocess.run([sys.executable, str(SCRIPT), *args, "--out", str(tmp_path)], capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
