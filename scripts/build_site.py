#!/usr/bin/env python
"""Build the rendered companion site: static HTML that works offline, then check it.

    pip install -e ".[site]"
    python scripts/build_site.py            # -> build/site/index.html

Front page: README.md; chapters: notebooks/00..08 rendered from their committed outputs (never
re-executed; regenerate those with `am3f reproduce --in-place`); a page with every committed table
and figure of figures/; docs/design-choices.md; docs/peers.md. Configuration: docs/site/conf.py.

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


def expected_pages() -> list[str]:
    """Pages the site must have, relative to its root."""
    notebooks = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    return (["index.html", "README.html", "docs/site/figures.html", "docs/design-choices.html",
             "docs/peers.html"]
            + [f"notebooks/{n}.html" for n in notebooks])


def build(out: Path, doctrees: Path | None = None, quiet: bool = True) -> None:
    """Sphinx html build of the site into ``out`` (warnings are errors: a broken cross-reference fails)."""
    from sphinx.cmd.build import build_main

    out = Path(out)
    doctrees = Path(doctrees) if doctrees else out.parent / f".{out.name}-doctrees"
    args = ["-b", "html", "-c", str(CONF_DIR), "-d", str(doctrees), "-W", "--keep-going", "-j", "1"]
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
