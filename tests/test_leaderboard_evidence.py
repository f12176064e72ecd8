"""figures/leaderboard.* regenerates from its committed evidence (figures/runs/leaderboard/: every row's
config, run record, predictions and oracle predictions) alone, byte for byte, with the hold-out half's UF1
and its interval on every row; the evidence script refuses what it cannot use in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "leaderboard_evidence.py"


@pytest.mark.skipif(not (REPO / "figures" / "runs" / "leaderboard").is_dir(),
                    reason="figures/runs/leaderboard/ is not committed yet: the leaderboard's remake (issue 29) is "
                           "still training (PROVENANCE.md)")
def test_the_leaderboard_regenerates_from_committed_evidence(tmp_path):
    out = tmp_path / "figures"
    out.mkdir()
    (out / "runs").symlink_to(REPO / "figures" / "runs")
    subprocess.run([sys.executable, str(SCRIPT), "--from-evidence", "--out", str(out)], check=True,
                   capture_output=True, cwd=REPO)
    for suffix in ("md", "csv", "tex"):
        assert (out / f"leaderboard.{suffix}").read_text() == (REPO / "figures" / f"leaderboard.{suffix}").read_text()
    table = (out / "leaderboard.md").read_text().splitlines()
    header = [c.strip() for c in table[2].split("|")]
    column = header.index("Hold-out UF1")
    rows = [line for line in table[4:] if line.startswith("| ")]
    assert len(rows) == 15
    assert all("[" in row.split("|")[column] for row in rows), "a hold-out value and its interval on every row"



@pytest.mark.skipif(not (REPO / "figures" / "runs" / "leaderboard").is_dir(),
                    reason="figures/runs/leaderboard/ is not committed yet (PROVENANCE.md)")
def test_half_optimism_table_regenerates_from_the_leaderboards_evidence(tmp_path):
    """figures/half_optimism.md (UF1 on the hold-out half vs half A, every leaderboard row) comes from
    figures/runs/ alone, byte for byte."""
    out = tmp_path / "figures"
    out.mkdir()
    (out / "runs").symlink_to(REPO / "figures" / "runs")
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "half_optimism.py"), "--out", str(out)], check=True,
                   capture_output=True, cwd=REPO)
    table = (out / "half_optimism.md").read_text()
    assert table == (REPO / "figures" / "half_optimism.md").read_text()
    lines = table.splitlines()
    column = [c.strip() for c in lines[2].split("|")].index("Hold-out UF1")
    rows = [line for line in lines[4:] if line.startswith("| ")]
    assert len(rows) == 15 and all("[" in row.split("|")[column] for row in rows)
    assert table.count("| AM3F-FlowNet (ours) |") == 2 and "authors' recipe" in table


@pytest.mark.parametrize("args, words", [
    ([], "give --runs"),
    (["--runs", "nowhere"], "nowhere"),
])
def test_evidence_script_refuses_in_one_line(tmp_path, args, words):
    done = subprocess.run([sys.executable, str(SCRIPT), *args, "--out", str(tmp_path)], capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_half_optimism_refuses_without_the_evidence_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "half_optimism.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and "leaderboard_evidence.py --runs" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not (REPO / "figures" / "runs" / "leaderboard").is_dir(),
                    reason="figures/runs/leaderboard/ is not committed yet (PROVENANCE.md)")
def test_remake_drift_sees_a_moved_conclusion_and_refuses_other_samples():
    """benchmarks/remake_drift.py: a row whose remake got better beyond the noise is flagged as a moved
    conclusion with a positive paired Δ; the untouched rows are level; a row on other samples is refused."""
    import dataclasses

    from am3f.errors import AM3FError

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import remake_drift
        from leaderboard_evidence import committed_rows
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    before = committed_rows(REPO / "figures")
    keep = ("am3f-tuned", "dualinception", "rcn")
    before = {k: before[k] for k in keep}
    perfect = before["dualinception"].predictions.assign(pred=lambda p: p["label"])
    after = dict(before, dualinception=dataclasses.replace(before["dualinception"], predictions=perfect))
    rows = {r["Row"]: r for r in remake_drift.drift_table(before, after)}
    assert rows["dualinception"]["moved"] == "YES" and rows["dualinception"]["after"] == "better"
    assert rows["dualinception"]["Δ UF1 after − before"].startswith("+0.")
    assert rows["rcn"]["moved"] == "" and rows["rcn"]["Δ UF1 after − before"].startswith("+0.0000 [0.000, 0.000]")
    fewer = before["rcn"].predictions.iloc[1:]
    with pytest.raises(AM3FError):
        remake_drift.drift_table(before, dict(before, rcn=dataclasses.replace(before["rcn"], predictions=fewer)))


@pytest.mark.skipif(not (REPO / "figures" / "runs" / "leaderboard").is_dir(),
                    reason="figures/runs/leaderboard/ is not committed yet (PROVENANCE.md)")
def test_am3f_compare_takes_committed_evidence():
    """A row's committed evidence (no fold files) is a run to `am3f compare`, read as committed."""
    from am3f.protocol.run_folder import load_evidence, load_run

    rows = REPO / "figures" / "runs" / "leaderboard"
    assert load_run(rows / "rcn").predictions.equals(load_evidence(rows / "rcn").predictions)
    done = subprocess.run([sys.executable, "-m", "am3f", "compare", str(rows / "rcn"), str(rows / "am3f-tuned")],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "Hold-out" in done.stdout and "composite" in done.stdout


REMADE_FROM = "0866496"   # the revision whose committed leaderboard evidence preceded the remake of 2026-12-06


def _has_revision(rev: str) -> bool:
    return subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{rev}^{{commit}}"],
                          capture_output=True).returncode == 0


@pytest.mark.skipif(not _has_revision(REMADE_FROM), reason=f"this clone lacks commit {REMADE_FROM} (shallow?)")
def test_remake_drift_table_regenerates_from_committed_evidence(tmp_path):
    """figures/remake_drift.md is the evidence at REMADE_FROM against figures/runs/ now, byte for byte."""
    out = tmp_path / "figures"
    out.mkdir()
    (out / "runs").symlink_to(REPO / "figures" / "runs")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "remake_drift.py"), "--before", REMADE_FROM,
                           "--out", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (out / "remake_drift.md").read_text() == (REPO / "figures" / "remake_drift.md").read_text()
    assert "conclusions moved:" in done.stdout


def test_remake_drift_refuses_an_unknown_revision_in_one_line(tmp_path):
    out = tmp_path / "figures"
    out.mkdir()
    (out / "runs").symlink_to(REPO / "figures" / "runs")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "remake_drift.py"), "--before", "no-such-rev",
                           "--out", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and "no-such-rev" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
