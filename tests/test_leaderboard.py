"""The leaderboard's display (notebook 09) and figure: no machine-speed numbers in what a notebook
shows (strict nbval compares it on whatever machine runs it), while the written tables keep them; no
pandas index column; the figure's sample count comes from the runs."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from am3f.data.dataset import load_flow_dataset
from am3f.protocol.engine import QUIET, run_loso
from am3f.protocol.run_folder import load_run
from am3f.results import leaderboard, writers

from conftest import EpochRunner

CORE_S = 4321.0


@pytest.fixture
def board_runs(two_dataset_root, tmp_path):
    """{variant: RunResult}: am3f 'full' and STSTNet on the same 18 toy samples, with core-seconds."""
    data = load_flow_dataset(two_dataset_root)

    def make(variant, model, folds=None):
        out = run_loso(data, EpochRunner(), tmp_path / f"{variant}-{folds}", seeds=[0, 1], folds=folds,
                       config={"model": model, "variant": variant, "parameters": 1234}, execution=QUIET)
        run = load_run(out, label=variant)
        run.info["core_s_per_seed"] = {"0": CORE_S, "1": CORE_S}
        return run

    return make


def test_display_leaves_out_timings_and_the_written_table_keeps_them(board_runs, tmp_path):
    runs = {"full": board_runs("full", "am3f"), "ststnet": board_runs("ststnet", "ststnet")}
    table = leaderboard.leaderboard_table(runs)
    assert "core-s / seed" in table.columns and set(table["core-s / seed"]) == {f"{CORE_S:.0f}"}
    shown = leaderboard.for_display(table)
    for text in (repr(shown), shown._repr_html_()):
        assert "core-s" not in text and f"{CORE_S:.0f}" not in text, text
        assert "STSTNet" in text and "Honest UF1" in text
    written = writers.write_table(table, tmp_path, "leaderboard")
    for kind in ("md", "tex", "csv"):
        text = written[kind].read_text()
        assert "core-s / seed" in text and f"{CORE_S:.0f}" in text, kind


def test_displayed_tables_have_no_index_column(board_runs):
    runs = {"full": board_runs("full", "am3f"), "ststnet": board_runs("ststnet", "ststnet")}
    table = leaderboard.leaderboard_table(runs)
    shown = leaderboard.for_display(table)
    assert repr(shown).split("\n")[0].split()[0] == "Method"    # pandas' own repr starts with the index
    assert "Method" in repr(table).split("\n")[0] and repr(table).split("\n")[1].lstrip().startswith("0")
    html = shown._repr_html_()
    body = html.split("<tbody>")[1]
    assert "<th" not in body, "a row header (the pandas index) in the displayed table"
    assert len(html.split("<thead>")[1].split("</thead>")[0].split("<th")) - 1 == len(shown.df.columns)


def test_figure_title_counts_the_samples_of_the_runs(board_runs):
    complete = leaderboard.leaderboard_rows({"full": board_runs("full", "am3f"),
                                             "ststnet": board_runs("ststnet", "ststnet")})
    fig = leaderboard.leaderboard_figure(complete)
    assert fig.axes[0].get_title() == "The same 18 samples, one honest protocol"
    plt.close(fig)
    assert list(complete["samples"]) == [18, 18] and list(complete["dataset_samples"]) == [18, 18]
    # two folds of five: s01 (3 samples) and sub01 (4 samples) of the 18
    partial = leaderboard.leaderboard_rows({"full": board_runs("full", "am3f", [0, 2]),
                                            "ststnet": board_runs("ststnet", "ststnet", [0, 2])})
    fig = leaderboard.leaderboard_figure(partial, synthetic=True)
    assert fig.axes[0].get_title() == "[SYNTHETIC DATA] The same 7 of 18 samples (partial runs), one honest protocol"
    plt.close(fig)
    mixed = pd.DataFrame({"samples": [18, 7], "samples_digest": ["a", "b"], "dataset_samples": [18, 18],
                          "complete": [True, False]})
    assert leaderboard.samples_title(mixed) == "7-18 samples (partial runs)"
