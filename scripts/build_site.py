#!/usr/bin/env python
"""Build the rendered companion site: static HTML that works offline, then check it.

    pip install -e ".[site]"
    python scripts/build_site.py            # -> build/site/index.html

Front page: README.md; chapters: notebooks/00..10 rendered from their committed outputs (never
re-executed; regenerate those with `am3f reproduce --in-place`); every page of docs/ (results,
protocol, leaderboard, usage, data, training, engine, your model, the CLI reference, the API reference
from docstrings, design choices, peers); a page with every committed table and figure of figures/.
Configuration: docs/site/conf.py, extended by this file (it is also a Sphinx extension, ``setup``
below): the docs pages in the navigation, human page titles, the API page, no default highlighting.

After the build every page is checked: the expected pages exist, every local link (href) and
image/script/stylesheet (src, link href) resolves to a file of the site (and #anchors to an id on
that page), and no asset is loaded from the network. Exit code 1 on a problem.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "docs" / "site"
# what the site reads (docs/site/conf.py's list, plus every page of docs/)
INCLUDE_PATTERNS = ["README.md", "docs/*.md", "docs/site/*.md", "notebooks/*.ipynb", "figures/*.md",
                    "figures/synthetic/*.md"]


def expected_pages() -> list[str]:
    """Pages the site must have, relative to its root."""
    notebooks = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    return (["index.html", "README.html", "docs/site/figures.html"]
            + [f"docs/{p}.html" for p in docs_pages()]
            + [f"notebooks/{n}.html" for n in notebooks])


# ------------------------------------------------------------------------------ the docs pages
# The navigation's "Documentation" section, in this order; any other docs/*.md page follows.
DOCS_ORDER = ["results", "protocol", "leaderboard", "usage", "data", "training", "engine", "your-model",
              "cli", "api", "design-choices", "peers"]

# Titles of the committed tables of figures/ (their files start with a bold caption, not a heading);
# a table not named here gets a title made from its file name ("cross_database" -> "Cross database").
FIGURE_TITLES = {
    "README": "About the figures", "PROVENANCE": "Provenance of the figures",
    "results": "Results table", "ablations": "Ablations", "peers": "Ours vs published methods",
    "protocol_audit": "Protocol audit", "cross_database": "Cross-database protocol",
    "single_database": "Single-database LOSO", "leaderboard": "Honest leaderboard",
    "tuning": "Tuning: each half's choice", "half_optimism": "Optimism of the development half",
    "gradcam_deletion": "Grad-CAM deletion and insertion", "flow_reference_correlation":
    "Flow vs reference flow correlation", "confusion_matrices": "Confusion matrices",
    "gradcam_mass": "Grad-CAM mass on moving regions", "flow_error": "Flow error",
}


def docs_pages() -> list[str]:
    """docs/*.md page names (without .md), navigation order."""
    names = [p.stem for p in sorted((REPO / "docs").glob("*.md"))]
    return [n for n in DOCS_ORDER if n in names] + [n for n in names if n not in DOCS_ORDER]


def figure_title(stem: str) -> str:
    base, synthetic = (stem[: -len("_synthetic")], True) if stem.endswith("_synthetic") else (stem, False)
    title = FIGURE_TITLES.get(base) or base.replace("_", " ").replace("-", " ").capitalize()
    return f"{title} (synthetic)" if synthetic else title


def api_modules() -> list[str]:
    """Every public module of the am3f package, found by walking it (subpackages included)."""
    import pkgutil

    sys.path.insert(0, str(REPO))
    import am3f

    names = ["am3f"] + [m.name for m in pkgutil.walk_packages(am3f.__path__, "am3f.")]
    return sorted(n for n in names if not any(part.startswith("_") for part in n.split(".")[1:]))


def _api_section() -> str:
    parts = []
    for name in api_modules():
        # eval-rst: autodoc writes reStructuredText, which MyST's own directive syntax would read as Markdown
        parts.append(f"## `{name}`\n\n```{{eval-rst}}\n.. automodule:: {name}\n   :members:\n```\n")
    return "\n".join(parts)


def _docstring_as_text(app, what, name, obj, options, lines):
    """Docstrings here are plain text with Markdown-style backticks, not reStructuredText: show them
    verbatim (a literal block), so none is misread and no warning fails the -W build."""
    if lines:
        lines[:] = ["::", ""] + ["   " + line for line in lines] + [""]


def _source_read_early(app, docname, source):
    """Before docs/site/conf.py's handler: the docs toctree on the front page, titles, the API page."""
    text = source[0]
    if docname == "README":
        text += ("\n\n```{toctree}\n:hidden:\n:caption: Documentation\n\n"
                 + "\n".join(f"docs/{p}" for p in docs_pages()) + "\n```\n")
    elif docname.startswith("figures/") and not text.lstrip().startswith("#"):
        text = f"# {figure_title(docname.split('/')[-1])}\n\n{text}"
    elif docname == "docs/api":
        text = text.replace("<!-- API MODULES -->", _api_section())
    source[0] = text


def _source_read_late(app, docname, source):
    """After docs/site/conf.py's handler: the figures page's sections get titles, not file names."""
    if docname == "docs/site/figures":
        source[0] = re.sub(r"^### (\S+)$", lambda m: f"### {figure_title(m[1])}", source[0], flags=re.M)


def setup(app):
    """Sphinx extension (loaded by build() through -D extensions=...)."""
    app.connect("source-read", _source_read_early, priority=400)
    app.connect("source-read", _source_read_late, priority=600)
    app.connect("autodoc-process-docstring", _docstring_as_text)
    return {"parallel_read_safe": True}


def build(out: Path, doctrees: Path | None = None, quiet: bool = True) -> None:
    """Sphinx html build of the site into ``out`` (warnings are errors: a broken cross-reference fails)."""
    from sphinx.cmd.build import build_main

    out = Path(out)
    doctrees = Path(doctrees) if doctrees else out.parent / f".{out.name}-doctrees"
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # this file is also an extension: build_site
    args = ["-b", "html", "-c", str(CONF_DIR), "-d", str(doctrees), "-W", "--keep-going", "-j", "1",
            "-D", "extensions=myst_nb,sphinx.ext.autodoc,build_site",
            "-D", "include_patterns=" + ",".join(INCLUDE_PATTERNS),
            "-D", "highlight_language=none"]
    rc = build_main(args + (["-q"] if quiet else []) + [str(REPO), str(out)])
    if rc != 0:
        raise SystemExit(f"sphinx build failed (exit {rc})")


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []     # <a href>: navigation
        self.assets: list[str] = []    # what the browser loads: img/script src, link href, ...
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if a.get("name") and tag == "a":
            self.ids.add(a["name"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "link" and a.get("href"):
            self.assets.append(a["href"])
        for key in ("src", "data-src"):
            if a.get(key):
                self.assets.append(a[key])
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "refresh":
            m = re.search(r"url=(.+)$", a.get("content", ""), re.I)
            if m:
                self.links.append(m.group(1).strip())


_EXTERNAL = ("http:", "https:", "//", "mailto:", "data:", "javascript:", "ftp:")


def check_site(out: Path) -> list[str]:
    """Problems of a built site (empty list: none)."""
    out = Path(out)
    problems = [f"missing page {p}" for p in expected_pages() if not (out / p).is_file()]
    parsed: dict[Path, _Refs] = {}

    def refs(page: Path) -> _Refs:
        if page not in parsed:
            r = _Refs()
            r.feed(page.read_text(encoding="utf-8", errors="replace"))
            parsed[page] = r
        return parsed[page]

    for page in sorted(out.rglob("*.html")):
        if any(part.startswith(".") for part in page.relative_to(out).parts):
            continue
        r = refs(page)
        rel = page.relative_to(out)
        for kind, urls in (("link", r.links), ("asset", r.assets)):
            for url in urls:
                if url.lower().startswith(_EXTERNAL):
                    if kind == "asset" and not url.lower().startswith(("data:", "mailto:")):
                        problems.append(f"{rel}: loads {url} from the network (the site must work offline)")
                    continue
                parts = urlsplit(url)
                target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
                if target.is_dir():
                    target = target / "index.html"
                if not target.is_file():
                    problems.append(f"{rel}: broken {kind} {url}")
                    continue
                if parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in refs(target).ids:
                    problems.append(f"{rel}: anchor #{parts.fragment} not found in {target.relative_to(out)}")
    for css in sorted(out.rglob("*.css")):
        for m in re.finditer(r"(?:url\(\s*['\"]?|@import\s+['\"])(https?:|//)", css.read_text(errors="replace")):
            problems.append(f"{css.relative_to(out)}: loads from the network ({m.group(0)})")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "build" / "site"), help="output folder (default build/site)")
    parser.add_argument("--verbose", action="store_true", help="show Sphinx's progress")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    t0 = time.perf_counter()
    build(out, quiet=not args.verbose)
    problems = check_site(out)
    for p in problems:
        print("problem:", p, file=sys.stderr)
    if problems:
        return 1
    n = sum(1 for _ in out.rglob("*.html"))
    print(f"built and checked {n} pages in {time.perf_counter() - t0:.0f} s; open {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
