"""The rendered companion site (scripts/build_site.py): builds offline from the committed notebook
outputs, has every page, and every local link and image resolves. Skipped without the `site` extra."""

import importlib.util
import re
import subprocess
from html import unescape

import pytest

from conftest import REPO

SCRIPT = REPO / "scripts" / "build_site.py"


def _build_site_module():
    spec = importlib.util.spec_from_file_location("build_site", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    for name in ("sphinx", "myst_nb", "furo"):
        pytest.importorskip(name, reason='the site extra is not installed (pip install -e ".[site]")')
    mod = _build_site_module()
    root = tmp_path_factory.mktemp("site")
    mod.build(root / "html", doctrees=root / "doctrees")
    return mod, root / "html"


def test_site_has_every_page_and_no_broken_or_network_link(site):
    mod, html = site
    assert mod.check_site(html) == []
    pages = mod.expected_pages()
    assert {"index.html", "README.html", "docs/site/figures.html", "docs/design-choices.html",
            "notebooks/00_walkthrough.html", "notebooks/08_explorer.html"} <= set(pages)


def test_front_page_is_the_readme_and_links_the_chapters(site):
    _, html = site
    front = (html / "README.html").read_text()
    assert "am3f — a reproducible companion to AM3F-FlowNet" in front
    for chapter in ("notebooks/00_walkthrough.html", "docs/site/figures.html", "docs/design-choices.html"):
        assert f'href="{chapter}' in front
    assert 'url=README.html' in (html / "index.html").read_text()


def test_notebook_pages_show_their_stored_outputs(site):
    _, html = site
    walk = (html / "notebooks" / "00_walkthrough.html").read_text()
    assert "*** SYNTHETIC DATA" in walk
    images = re.findall(r'<img[^>]+src="([^"]+)"', walk)
    assert len(images) >= 5 and all((html / "notebooks" / src).resolve().is_file() for src in images)
    # every chapter shows the banner of its setup cell (what the outputs say: tests/test_notebook_outputs.py)
    for page in (html / "notebooks").glob("*.html"):
        assert "*** SYNTHETIC DATA" in page.read_text(), page.name


def test_figures_page_shows_every_committed_figure_and_table(site):
    _, html = site
    page = (html / "docs" / "site" / "figures.html").read_text()
    tracked = subprocess.run(["git", "ls-files", "figures"], cwd=REPO, capture_output=True, text=True).stdout.split()
    pngs = [f for f in tracked if f.endswith(".png")]
    assert pngs
    shown = {re.sub(r"(\.[0-9a-f]{32})?\.png$", "", src.rsplit("/", 1)[-1])
             for src in re.findall(r'<img[^>]+src="([^"]+)"', page)}
    for f in pngs:
        assert f.rsplit("/", 1)[-1][:-4] in shown, f
    assert "Composite UF1" in page and "SYNTHETIC" in page
    # real data: aggregate figures only (no per-sample rendering of licence-restricted samples)
    for name in shown:
        if not name.endswith("_synthetic"):
            assert not name.startswith(("flow_gallery", "gradcam_sample", "gradcam_per_class")), name


def test_footer_has_a_proper_copyright_line(site):
    """furo's footer prints "Copyright © {copyright}" even with an empty copyright (docs/site/conf.py)."""
    _, html = site
    pages = [p for p in html.rglob("*.html") if p.name != "index.html" and not any(
        part.startswith((".", "_")) for part in p.relative_to(html).parts)]
    assert len(pages) >= 10
    for page in pages:
        blocks = re.findall(r'<div class="copyright">(.*?)</div>', page.read_text(), re.S)
        assert len(blocks) == 1, page.name
        text = " ".join(unescape(re.sub(r"<[^>]+>", " ", blocks[0])).split())
        assert text == "Copyright © am3f contributors", (page.name, text)


def test_site_checker_catches_broken_links_and_network_assets(tmp_path):
    mod = _build_site_module()
    (tmp_path / "a.html").write_text(
        '<html><head><script src="https://cdn.example.org/x.js"></script><link rel="stylesheet" href="s.css">'
        '</head><body id="top"><a href="b.html">b</a><a href="#nowhere">x</a><a href="#top">ok</a>'
        '<img src="_images/missing.png"><a href="https://example.org/">external link: fine</a></body></html>')
    (tmp_path / "s.css").write_text("@import url('https://fonts.example.org/font.css');")
    problems = " | ".join(mod.check_site(tmp_path))
    for expected in ("loads https://cdn.example.org/x.js", "broken link b.html", "anchor #nowhere",
                     "broken asset _images/missing.png", "s.css: loads from the network", "missing page README.html"):
        assert expected in problems, (expected, problems)
    assert "example.org/\"" not in problems and "#top" not in problems


def test_docs_pages_are_in_the_navigation_with_human_titles(site):
    mod, html = site
    front = (html / "README.html").read_text()
    for page in mod.docs_pages():
        assert f'href="docs/{page}.html"' in front, page
    # titles come from headings or a mapping, never a raw file name such as "cross_database"
    for page in list((html / "figures").glob("*.html")) + list((html / "docs").glob("*.html")):
        title = re.search(r"<title>(.*?) - ", page.read_text()).group(1)
        assert "_" not in title and title != page.stem, (page.name, title)
    # no default highlight language: text blocks are not coloured as Python
    assert "highlight-python" not in front and "highlight-default" not in front
    api = (html / "docs" / "api.html").read_text()
    assert 'id="module-am3f.app.cli"' in api and '<dl class="py' in api
