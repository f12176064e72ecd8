"""Is my data the same? The manifest of the composite set every committed real table was made from,
and ``am3f data verify`` against it.

The manifest (``am3f/manifests/megc2019-composite.csv``, shipped in the package) holds, per sample, its
id, source dataset, subject, label, the SHA-256 of its PNG file and the per-channel mean of the image
(u, v, strain in [0, 1]); ``megc2019-composite.json`` beside it holds the set's fingerprint
(:func:`am3f.data.dataset.data_fingerprint`). Hashes and means carry no image content: the data stays out of the
repository. Made by :func:`build_manifest` from the licensed copy in ``../shared/data``.

A folder made by ``am3f extract`` from the raw videos will not be byte-identical to anyone's; for it,
:func:`verify` still says whether the labels match, and :func:`flow_correlation` how closely its flows
follow a reference copy the user has, channel by channel.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from am3f.data.dataset import CHANNELS, FlowDataset, data_fingerprint, find_labels_csv, read_labels
from am3f.errors import AM3FError
from am3f.flow.optical_flow import flow_image_path, read_flow_image

MANIFEST_NAME = "megc2019-composite"
COLUMNS = ("sample_id", "dataset", "subject", "label", "png_sha256") + tuple(f"mean_{c}" for c in CHANNELS)


# ----------------------------------------------------------------------------- reading a folder tolerantly
@dataclass
class FolderContents:
    """What a composite-layout folder holds, read without stopping at the first problem."""

    rows: pd.DataFrame  # sample_id, dataset, subject, label, path (of its PNG; missing files too)
    extra_files: list[str] = field(default_factory=list)  # PNGs in flows/ that no CSV row names


def read_folder(root: str | os.PathLike) -> FolderContents:
    root = Path(root)
    if not root.is_dir():
        raise AM3FError(f"{root}: no such folder")
    flows = root / "flows"
    if not flows.is_dir():
        raise AM3FError(f"{root}: not a composite-layout folder (no flows/ inside)")
    csv_path = find_labels_csv(root)
    recs = []
    for rec in read_labels(csv_path):
        recs.append({"sample_id": f"{rec['sub']}_{rec['filename_o']}", "dataset": rec["dataset"].lower() or "unknown",
                     "subject": rec["sub"], "label": _label(rec["label"], f"{csv_path}, line {rec['_line']}"),
                     "path": flow_image_path(flows, rec["sub"], rec["filename_o"])})
    rows = pd.DataFrame(recs, columns=["sample_id", "dataset", "subject", "label", "path"])
    named = {p.name for p in rows["path"]}
    extra = sorted(p.name for p in flows.glob("*.png") if p.name not in named)
    return FolderContents(rows, extra)


def _label(value: str, where: str) -> int:
    try:
        label = float(value)
        if label != int(label):
            raise ValueError
    except (ValueError, OverflowError):
        raise AM3FError(f"{where}: label {value!r} is not an integer class index") from None
    return int(label)


def _image_record(path: Path) -> dict:
    x = read_flow_image(path)
    rec = {"png_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    rec.update({f"mean_{c}": round(float(x[k].mean()), 6) for k, c in enumerate(CHANNELS)})
    return rec


def build_manifest(root: str | os.PathLike) -> pd.DataFrame:
    """The manifest of the folder ``root`` (every sample must be present and readable)."""
    contents = read_folder(root)
    out = [{**{k: r[k] for k in ("sample_id", "dataset", "subject", "label")}, **_image_record(r["path"])}
           for r in contents.rows.to_dict("records")]
    return pd.DataFrame(out, columns=list(COLUMNS)).sort_values("sample_id", kind="stable").reset_index(drop=True)


def shipped_manifest() -> tuple[pd.DataFrame, dict]:
    """(manifest, its JSON record) of the set the committed real tables were made from."""
    base = resources.files("am3f") / "manifests"
    table = pd.read_csv(base.joinpath(f"{MANIFEST_NAME}.csv").open(encoding="utf-8"), dtype=_DTYPES)
    return table, json.loads(base.joinpath(f"{MANIFEST_NAME}.json").read_text(encoding="utf-8"))


_DTYPES = {"sample_id": str, "dataset": str, "subject": str, "png_sha256": str}


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """A manifest CSV written by :func:`build_manifest` (``--manifest``), checked for its columns."""
    path = Path(path)
    if not path.is_file():
        raise AM3FError(f"{path}: manifest not found")
    try:
        table = pd.read_csv(path, dtype=_DTYPES)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise AM3FError(f"{path}: not a readable manifest CSV ({exc})") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise AM3FError(f"{path}: not a manifest (missing column(s) {', '.join(missing)}; "
                        f"write one with am3f.data.manifest.build_manifest)")
    return table


def fingerprint_status(data: FlowDataset) -> str:
    """One line for a notebook: is ``data`` the set the committed real tables were made from?"""
    if data.synthetic:
        return "data: the embedded SYNTHETIC set (the manifest describes the real composite set; nothing to compare)"
    _, record = shipped_manifest()
    mine = data_fingerprint(data)
    if mine == record["fingerprint"]:
        return (f"data: identical to the set the committed real tables were made from ({record['n_samples']} "
                f"samples, fingerprint {mine[:12]})")
    return (f"data: DIFFERS from the set the committed real tables were made from (fingerprint {mine[:12]} vs "
            f"{record['fingerprint'][:12]}); `am3f data verify DIR` names the samples")


# ----------------------------------------------------------------------------- verification
def verify(root: str | os.PathLike, manifest: pd.DataFrame | str | os.PathLike | None = None
           ) -> tuple[list[dict], int]:
    """(differences, number of identical samples) of the folder ``root`` against ``manifest`` (a table, a
    manifest CSV's path; default: the shipped one). A difference: {"sample_id", "kind", "detail"}, kind one
    of "missing", "extra", "duplicated" (a sample named twice by the labels CSV), "label differs", "dataset
    differs", "subject differs", "pixels differ", "file differs"."""
    if manifest is None:
        manifest = shipped_manifest()[0]
    elif not isinstance(manifest, pd.DataFrame):
        manifest = read_manifest(manifest)
    contents = read_folder(root)
    ref = manifest.drop_duplicates("sample_id").set_index("sample_id")
    rows = contents.rows
    repeated = rows["sample_id"][rows["sample_id"].duplicated()].unique()
    diffs = [{"sample_id": s, "kind": "duplicated",
              "detail": f"the labels CSV names it {int((rows['sample_id'] == s).sum())} times (the first is compared)"}
             for s in repeated]
    mine = rows.drop_duplicates("sample_id").set_index("sample_id")
    diffs += [{"sample_id": s, "kind": "missing", "detail": "in the manifest, not in the labels CSV"}
              for s in ref.index.difference(mine.index)]
    diffs += [{"sample_id": s, "kind": "extra", "detail": "in the labels CSV, not in the manifest"}
              for s in mine.index.difference(ref.index)]
    diffs += [{"sample_id": f, "kind": "extra", "detail": "a PNG in flows/ that no CSV row names"}
              for f in contents.extra_files]
    identical = 0
    for sid in sorted(mine.index.intersection(ref.index)):
        found = _compare_sample(sid, mine.loc[sid], ref.loc[sid])
        diffs += found
        identical += not found and sid not in repeated
    return sorted(diffs, key=lambda d: (d["sample_id"], d["kind"])), identical


def _compare_sample(sid: str, mine: pd.Series, ref: pd.Series) -> list[dict]:
    out = [{"sample_id": sid, "kind": f"{key} differs", "detail": f"manifest {ref[key]!r}, yours {mine[key]!r}"}
           for key in ("label", "dataset", "subject") if str(mine[key]) != str(ref[key])]
    path = Path(mine["path"])
    if not path.is_file():
        return out + [{"sample_id": sid, "kind": "missing", "detail": f"{path.name} not found in flows/"}]
    try:
        rec = _image_record(path)
    except AM3FError as exc:
        return out + [{"sample_id": sid, "kind": "pixels differ", "detail": f"unreadable: {exc}"}]
    if rec["png_sha256"] != ref["png_sha256"]:
        means = [rec[f"mean_{c}"] - ref[f"mean_{c}"] for c in CHANNELS]
        same = all(abs(d) < 1e-6 for d in means)
        out.append({"sample_id": sid, "kind": "file differs" if same else "pixels differ",
                    "detail": "same pixel means: re-encoded?" if same else
                    "channel means differ by " + ", ".join(f"{c} {d:+.4f}" for c, d in zip(CHANNELS, means))})
    return out


def flow_correlation(root: str | os.PathLike, reference: str | os.PathLike) -> pd.DataFrame:
    """Per sample present in both folders: the Pearson correlation of each channel of ``root``'s flow
    image with ``reference``'s (both at the same image size)."""
    mine, ref = read_folder(root).rows.set_index("sample_id"), read_folder(reference).rows.set_index("sample_id")
    out = []
    for sid in sorted(mine.index.intersection(ref.index)):
        if not (Path(mine.loc[sid, "path"]).is_file() and Path(ref.loc[sid, "path"]).is_file()):
            continue
        b = read_flow_image(Path(ref.loc[sid, "path"]))
        a = read_flow_image(Path(mine.loc[sid, "path"]), tuple(b.shape[1:]))  # another size: one-line error
        row = {"sample_id": sid}
        for k, c in enumerate(CHANNELS):
            x, y = a[k].ravel(), b[k].ravel()
            row[c] = float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else float("nan")
        out.append(row)
    return pd.DataFrame(out, columns=["sample_id", *CHANNELS])
