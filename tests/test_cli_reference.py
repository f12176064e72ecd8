"""docs/cli.md is the command-line reference generated from the am3f argument parser
(scripts/cli_reference.py): the committed page must be exactly what the script writes now."""

import importlib.util
import subprocess
import sys

from conftest import REPO

SCRIPT = REPO / "scripts" / "cli_reference.py"


def _module():
    spec = importlib.util.spec_from_file_location("cli_reference", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_cli_reference_is_the_generated_one():
    mod = _module()
    committed = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == mod.reference(), "docs/cli.md is stale: run python scripts/cli_reference.py"


def test_cli_reference_names_every_subcommand_and_option():
    from am3f.app.cli import build_parser

    page = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in sub.choices.items():
        assert f"## `am3f {name}`" in page, name
        for action in p._actions:
            for opt in action.option_strings:
                if opt not in ("-h", "--help"):
                    assert f"`{opt}" in page, (name, opt)


def test_check_mode_passes_on_the_committed_page():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--check"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
