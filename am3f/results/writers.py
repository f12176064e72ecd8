"""Writing results: Markdown / LaTeX / CSV tables and PNG + PDF figures, always labelled SYNTHETIC
when they come from the generated set, and kept apart when they render individual real samples."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

SYNTHETIC_TAG = "SYNTHETIC"
EMPTY = "—"


def synthetic_caption(caption: str, synthetic: bool) -> str:
    """Prefix a caption/title so no synthetic result can be mistaken for a real one."""
    return f"[{SYNTHETIC_TAG} DATA] {caption}" if synthetic and SYNTHETIC_TAG not in caption else caption


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return EMPTY
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def to_markdown(df: pd.DataFrame, caption: str | None = None) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency); caption as a bold line above."""
    cols = [str(c) for c in df.columns]
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = [f"**{caption}**", ""] if caption else []
    lines.append("| " + " | ".join(esc(c) for c in cols) + " |")
    lines.append("|" + "|".join("---" for _ in cols) + "|")
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(esc(_cell(v)) for v in row) + " |")
    return "\n".join(lines) + "\n"


class DisplayTable:
    """A table as a notebook shows it: the DataFrame without its pandas index (a row number 0, 1, 2 is
    no column of a results table), as HTML (JupyterLab, GitHub, the rendered site) and as aligned text
    (text/plain, which strict nbval compares). ``display(display_table(df))``."""

    def __init__(self, df: pd.DataFrame):
        self.df = df

    def _repr_html_(self) -> str:
        return self.df.to_html(index=False, notebook=True, na_rep=EMPTY)

    def __repr__(self) -> str:
        # wrapped at the notebook's display width, like a DataFrame's own repr
        return self.df.to_string(index=False, na_rep=EMPTY, line_width=pd.get_option("display.width"))


def display_table(df: pd.DataFrame) -> DisplayTable:
    """What a notebook displays for a table (see :class:`DisplayTable`)."""
    return DisplayTable(df)


_LATEX_ESCAPES = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
                  "±": r"$\pm$", "—": "---", "Δ": r"$\Delta$", "–": "--"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def to_latex(df: pd.DataFrame, caption: str | None = None, label: str | None = None) -> str:
    """A booktabs ``table`` environment (needs \\usepackage{booktabs}); text columns left, others centred."""
    cols = [str(c) for c in df.columns]
    align = "".join("l" if c in ("Method", "Protocol", "Source", "Variant", "What changes", "What it does")
                    else "c" for c in cols)
    lines = [r"\begin{table}[t]", r"\centering", r"\small"]
    if caption:
        lines.append(r"\caption{" + latex_escape(caption) + "}")
    if label:
        lines.append(r"\label{" + label + "}")
    lines += [r"\begin{tabular}{" + align + "}", r"\toprule",
              " & ".join(latex_escape(c) for c in cols) + r" \\", r"\midrule"]
    for row in df.itertuples(index=False):
        lines.append(" & ".join(latex_escape(_cell(v)) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(df: pd.DataFrame, figures_dir: str | os.PathLike, stem: str, caption: str = "",
                synthetic: bool = False) -> dict[str, Path]:
    """Write ``<stem>.md`` and ``<stem>.tex`` (and ``<stem>.csv``) into ``figures_dir``; returns the paths."""
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    if synthetic:
        stem = stem if stem.endswith("_synthetic") else f"{stem}_synthetic"
    caption = synthetic_caption(caption, synthetic)
    paths = {"md": out / f"{stem}.md", "tex": out / f"{stem}.tex", "csv": out / f"{stem}.csv"}
    paths["md"].write_text(to_markdown(df, caption))
    paths["tex"].write_text(to_latex(df, caption, label=f"tab:{stem}"))
    df.to_csv(paths["csv"], index=False)
    return paths


PER_SAMPLE_DIR = "per-sample"
PER_SAMPLE_NOTE = """# per-sample figures of licence-restricted data

Each figure here renders individual samples (flow images, Grad-CAM maps over them) of a
licence-restricted data set. They are for your own inspection: keep them local and do not publish or
commit them. Aggregate figures and tables sit one folder up.
"""


def save_figure(fig, figures_dir: str | os.PathLike, stem: str, synthetic: bool = False,
                formats: Sequence[str] = ("png", "pdf"), dpi: int = 150, per_sample: bool = False) -> list[Path]:
    """Save a matplotlib figure as PNG and PDF; synthetic figures get a ``_synthetic`` suffix.

    ``per_sample=True`` marks a figure that renders individual samples: for real (licence-restricted)
    data it goes to ``figures_dir/per-sample/``, away from the aggregate outputs that may be published.
    """
    restricted = per_sample and not synthetic
    out = Path(figures_dir) / PER_SAMPLE_DIR if restricted else Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    if restricted:
        (out / "README.md").write_text(PER_SAMPLE_NOTE)
    if synthetic and not stem.endswith("_synthetic"):
        stem = f"{stem}_synthetic"
    paths = []
    for fmt in formats:
        p = out / f"{stem}.{fmt}"
        # a fixed creation date keeps PDFs byte-stable between reruns
        meta = {"CreationDate": None} if fmt == "pdf" else ({"Software": None} if fmt == "png" else None)
        fig.savefig(p, dpi=dpi, bbox_inches="tight", metadata=meta)
        paths.append(p)
    return paths
