"""Sphinx + MyST-NB configuration of the rendered companion site (static HTML that works offline).

Built by ``python scripts/build_site.py`` (``python -m sphinx -b html -c docs/site . build/site``
plus checks). The source folder is the checkout itself, but only the files in ``include_patterns``
are read: the README (front page), the executed notebooks (rendered from their committed outputs,
never re-executed), the committed figures and tables, and the design choices.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

project = "am3f"
author = "am3f contributors"
# the footer's "Copyright © ..." line (furo prints it even when empty); no year, so a rebuild in another
# year gives the same pages. The licence (MIT) is declared in pyproject.toml.
copyright = author
html_title = "am3f: a reproducible companion to AM3F-FlowNet"
extensions = ["myst_nb"]

root_doc = "README"
include_patterns = ["README.md", "docs/design-choices.md", "docs/peers.md", "docs/site/*.md", "notebooks/*.ipynb",
                    "figures/*.md", "figures/synthetic/*.md"]
exclude_patterns = [".git", ".venv", "build", "out", "runs", "**/.ipynb_checkpoints", "**/per-sample"]

# notebooks: stored outputs only (the committed ones, made by `am3f reproduce --in-place`)
nb_execution_mode = "off"
nb_merge_streams = True
nb_output_stderr = "show"
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]   # tables in figures/ start with a bold caption, no heading

# offline: the theme bundles its CSS/JS and uses system fonts; math (if any) is shown as plain text by
# the "plain" renderer below instead of MathJax, which would load from a CDN
html_theme = "furo"
html_math_renderer = "plain"
html_static_path = ["_static"]
html_css_files = ["am3f.css"]  # tables and long commands fit the column (docs/site/_static/am3f.css)
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None

# figures/ (not figures/synthetic/) holds the committed AGGREGATE results on the real composite set
# (tables, confusion matrices, class-averaged Grad-CAM; the README quotes the same numbers). Figures of
# individual real samples are never committed (tests/test_repository.py) and so never reach the site;
# the notebooks' stored outputs are synthetic only (tests/test_notebook_outputs.py).

NOTEBOOKS = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))

TOCTREE = (
    "\n\n```{toctree}\n:hidden:\n:caption: Notebooks\n\n"
    + "\n".join(f"notebooks/{n}" for n in NOTEBOOKS)
    + "\n```\n\n```{toctree}\n:hidden:\n:caption: Results and choices\n\n"
    "docs/site/figures\ndocs/design-choices\ndocs/peers\n```\n"
)

# README links that point at files GitHub shows but the site renders elsewhere
README_LINKS = {
    "](figures/)": "](docs/site/figures.md)",
    "](build/site/notebooks/00_walkthrough.html)": "](notebooks/00_walkthrough.ipynb)",
    "](build/site/index.html)": "](README.md)",
}


def _figures_section(folder: Path, rel: str) -> str:
    """Markdown for every committed table (included) and PNG figure (shown) of one figures folder;
    each table is also a page of its own (README links to them), listed in a hidden toctree."""
    docs = [md for md in sorted(folder.glob("*.md"))]
    parts = ["```{toctree}\n:hidden:\n\n" + "\n".join(f"{rel}/{md.stem}" for md in docs) + "\n```\n"]
    for md in docs:
        if md.name in ("README.md", "PROVENANCE.md"):
            continue
        parts.append(f"### {md.stem}\n\n```{{include}} {rel}/{md.name}\n```\n")
    for png in sorted(folder.glob("*.png")):
        parts.append(f"### {png.stem}\n\n![{png.stem}]({rel}/{png.name})\n")
    return "\n".join(parts)


def _source_read(app, docname, source):
    text = source[0]
    if docname == root_doc:
        for old, new in README_LINKS.items():
            text = text.replace(old, new)
        text += TOCTREE
    elif docname.startswith("figures/") and not text.lstrip().startswith("#"):
        text = f"# {docname.split('/')[-1]}\n\n{text}"      # a committed table: its file name as title
    elif docname == "docs/site/figures":
        text = text.replace("<!-- REAL FIGURES -->", _figures_section(REPO / "figures", "../../figures"))
        text = text.replace("<!-- SYNTHETIC FIGURES -->",
                            _figures_section(REPO / "figures" / "synthetic", "../../figures/synthetic"))
    source[0] = text


def _index_redirect(app, exception):
    """build/site/index.html opens the front page (README.html)."""
    if exception is None and app.builder.format == "html":
        (Path(app.outdir) / "index.html").write_text(
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>am3f</title>'
            '<meta http-equiv="refresh" content="0; url=README.html"></head>'
            '<body><a href="README.html">am3f: open the front page</a></body></html>\n')


def _plain_math(self, node):
    from html import escape

    from docutils import nodes

    tag = "div" if isinstance(node, nodes.math_block) else "span"
    self.body.append(f'<{tag} class="math notranslate">{escape(node.astext())}</{tag}>')
    raise nodes.SkipNode


def setup(app):
    app.add_html_math_renderer("plain", (_plain_math, None), (_plain_math, None))
    app.connect("source-read", _source_read)
    app.connect("build-finished", _index_redirect)
    return {"parallel_read_safe": True}

