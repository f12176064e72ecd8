"""A notebook prints the same output folders wherever it runs (JupyterLab starts it in notebooks/, papermill
in the checkout): paths inside the checkout are shown relative to it."""

import os
from pathlib import Path

from am3f.app.notebook import shown_path
from am3f.protocol.launch import repo_root


def test_paths_inside_the_checkout_do_not_depend_on_the_working_directory(tmp_path):
    root = repo_root()
    if root is None:
        return  # an installed package: nothing to be relative to
    where = os.getcwd()
    try:
        shown = []
        for cwd in (root, root / "notebooks", tmp_path):
            os.chdir(cwd)
            shown.append(shown_path(root / "out" / "figures"))
    finally:
        os.chdir(where)
    assert shown == ["out/figures"] * 3


def test_paths_outside_the_checkout_are_shown_as_given(tmp_path):
    assert shown_path(tmp_path / "figs") == str(tmp_path / "figs")
    assert Path(shown_path(Path("relative") / "x")).name == "x"
