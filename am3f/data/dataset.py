"""Flow-image datasets in the MEGC2019 composite ("community") layout.

A dataset directory holds a labels CSV and one flow image per sample::

    ROOT/combined_3_class2_for_optical_flow.csv   (or labels.csv, or the official combined_3class_gt.csv)
    ROOT/flows/<sub>_<filename_o> .png              (note the space before .png, as the community files have it)

Each PNG stores R = horizontal flow u, G = vertical flow v, B = optical strain. We hand the model
float32 arrays in that same order, **(u, v, strain)**, scaled to [0, 1] (pixel / 255).
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from am3f.errors import DataError
from am3f.flow.optical_flow import flow_image_path, read_flow_image

CLASS_NAMES: tuple[str, ...] = ("negative", "positive", "surprise")
CHANNELS: tuple[str, ...] = ("u", "v", "strain")
DATASET_TITLES = {"casme2": "CASME II", "samm": "SAMM", "smic": "SMIC-HS", "synthetic": "Synthetic"}

LABEL_CSV_NAMES = ("labels.csv", "combined_3_class2_for_optical_flow.csv", "combined_3class_gt.csv")
COMPOSITE_SUBDIR = "megc2019-composite"
REQUIRED_COLUMNS = ("dataset", "sub", "filename_o", "label")
# The official MEGC2019 ground truth has no header row and calls the columns differently.
OFFICIAL_GT_COLUMNS = ("dataset", "sub", "filename_o", "label")
DATA_ENV = "AM3F_DATA"


@dataclass
class FlowDataset:
    """Flow images and their metadata, aligned by index.

    ``x`` is float32 (N, 3, H, W) in (u, v, strain) order, values in [0, 1].
    """

    x: np.ndarray
    labels: np.ndarray
    subjects: np.ndarray
    datasets: np.ndarray
    sample_ids: np.ndarray
    name: str = "dataset"
    root: Path | None = None
    synthetic: bool = False
    class_names: tuple[str, ...] = CLASS_NAMES
    extra: dict = field(default_factory=dict)
    # what one fold leaves out (am3f.protocol.folds): "subject" (LOSO) or "dataset" (the cross-database protocol)
    fold_by: str = "subject"
    # the source databases this set was restricted to (:func:`select_datasets`); empty: all of its folder
    only_datasets: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> FlowDataset:
        """Rows selected by a boolean mask or an index array (metadata kept)."""
        return FlowDataset(
            x=self.x[mask], labels=self.labels[mask], subjects=self.subjects[mask],
            datasets=self.datasets[mask], sample_ids=self.sample_ids[mask], name=self.name,
            root=self.root, synthetic=self.synthetic, class_names=self.class_names, extra=self.extra,
            fold_by=self.fold_by, only_datasets=self.only_datasets,
        )

    def joined(self, other: FlowDataset) -> FlowDataset:
        """This dataset's rows, then ``other``'s (this one's metadata kept): e.g. a fold given as two sets."""
        return FlowDataset(
            x=np.concatenate([self.x, other.x]), labels=np.r_[self.labels, other.labels],
            subjects=np.r_[self.subjects, other.subjects], datasets=np.r_[self.datasets, other.datasets],
            sample_ids=np.r_[self.sample_ids, other.sample_ids], name=self.name, root=self.root,
            synthetic=self.synthetic, class_names=self.class_names, extra=self.extra,
        )

    @property
    def subject_ids(self) -> list[str]:
        """Subjects in fold order (sorted), one LOSO fold each."""
        return sorted(set(self.subjects.tolist()))

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.x.shape[2]), int(self.x.shape[3])

    def describe(self) -> str:
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        per_class = ", ".join(f"{c} {n}" for c, n in zip(self.class_names, counts))
        tag = " [SYNTHETIC]" if self.synthetic else ""
        if self.only_datasets:
            tag += f" [{' + '.join(DATASET_TITLES.get(d, d) for d in self.only_datasets)} only]"
        return (f"{self.name}{tag}: {len(self)} samples, {len(self.subject_ids)} subjects, "
                f"{self.image_size[0]}x{self.image_size[1]} flow images; {per_class}")


def parse_datasets(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"casme2,samm"`` (or ``["casme2", "samm"]``, or ``"casme2 samm"`` as papermill may pass it) ->
    ``("casme2", "samm")``: sorted, without repeats; empty or None -> ``()`` (every database)."""
    if spec is None:
        return ()
    parts = spec.replace(",", " ").split() if isinstance(spec, str) else [str(s).strip() for s in spec]
    return tuple(sorted({p for p in parts if p}))


def select_datasets(data: FlowDataset, names: str | Sequence[str] | None) -> FlowDataset:
    """``data`` restricted to the samples of the source databases ``names`` (e.g. ``"samm"``): the
    single-database protocol, LOSO inside one database. Folds, seeds, priors and the development half are
    computed from what is kept, as for any dataset; runs record the selection (``only_datasets``), so a
    single-database run never shares a folder or a table row with a composite one. ``names`` empty: ``data``."""
    wanted = parse_datasets(names)
    if not wanted:
        return data
    present = sorted(set(data.datasets.tolist()))
    unknown = [n for n in wanted if n not in present]
    if unknown:
        raise DataError(f"--datasets: {', '.join(map(repr, unknown))} not in {data.name} "
                        f"(its databases: {', '.join(present)})")
    if set(wanted) == set(present) and not data.only_datasets:
        return data  # every database of the set: the composite run itself
    kept = data.subset(np.isin(data.datasets, wanted))
    kept.only_datasets = wanted
    return kept


def data_fingerprint(data: FlowDataset) -> str:
    """SHA-256 (hex) over every sample in sample-id order: its id, label, and its image as the loader
    gives it (float32 (3, H, W), C order). The same for the same images and labels on any machine."""
    h = hashlib.sha256()
    for i in np.argsort(data.sample_ids, kind="stable"):
        h.update(f"{data.sample_ids[i]}\t{int(data.labels[i])}\n".encode())
        h.update(np.ascontiguousarray(data.x[i], dtype=np.float32).tobytes())
    return h.hexdigest()


def find_labels_csv(root: Path) -> Path:
    for name in LABEL_CSV_NAMES:
        if (root / name).is_file():
            return root / name
    raise DataError(f"{root}: not a dataset in the composite layout: no labels CSV ({', '.join(LABEL_CSV_NAMES)}); "
                    f"raw frames must first be turned into flow images with `am3f extract`")


def resolve_root(root: str | os.PathLike | None) -> Path:
    """The dataset directory: the argument, else $AM3F_DATA. Accepts the shared-data parent too."""
    source = ""
    if root is None or str(root) == "":
        root = os.environ.get(DATA_ENV, "")
        source = f" (from ${DATA_ENV})"
        if not root:
            raise DataError(f"no data directory given (pass one, or set ${DATA_ENV})")
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(f"{path}: data directory does not exist{source}")
    if not path.is_dir():
        raise DataError(f"{path}: not a directory{source}")
    has_csv = any((path / n).is_file() for n in LABEL_CSV_NAMES)
    if not has_csv and (path / COMPOSITE_SUBDIR).is_dir():
        path = path / COMPOSITE_SUBDIR
    return path


def read_labels(csv_path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a labels CSV as dicts with at least dataset, sub, filename_o, label.

    Accepts the community CSV (with header) and the official MEGC2019 ground truth (no header;
    SAMM subjects written without leading zeros, which we restore from the filename).
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: labels CSV not found")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if any(cell.strip() for cell in r)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{csv_path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise DataError(f"{csv_path}: CSV file is empty")
    header = [h.strip() for h in rows[0]]
    if any(col in header for col in REQUIRED_COLUMNS):
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DataError(f"{csv_path}: CSV is missing column(s) {', '.join(missing)} "
                            f"(has {', '.join(header)})")
        body, line0 = rows[1:], 2
    else:
        if len(header) < len(OFFICIAL_GT_COLUMNS):
            raise DataError(f"{csv_path}: CSV has no header with columns {', '.join(REQUIRED_COLUMNS)} "
                            f"and is not the 4-column official MEGC2019 ground truth")
        header, body, line0 = list(OFFICIAL_GT_COLUMNS), rows, 1
    out = []
    for lineno, row in enumerate(body, start=line0):
        if len(row) < len(header):
            row = row + [""] * (len(header) - len(row))
        rec = {h: row[i].strip() for i, h in enumerate(header)}
        if rec["dataset"].lower() == "samm" and rec["sub"].isdigit():
            # official GT writes SAMM subject 006 as "6"; the flow file names keep the zeros
            rec["sub"] = rec["filename_o"].split("_")[0] if "_" in rec["filename_o"] else rec["sub"].zfill(3)
        rec["_line"] = str(lineno)
        out.append(rec)
    return out


def load_flow_dataset(root: str | os.PathLike | None = None, labels_csv: str | os.PathLike | None = None,
                      *, image_size: int | None = None, name: str | None = None) -> FlowDataset:
    """Load a composite-layout dataset: labels CSV + ``flows/`` images, validated.

    ``root`` falls back to ``$AM3F_DATA``. ``labels_csv`` overrides the CSV found in ``root``
    (e.g. the official ``combined_3class_gt.csv``). Every problem raises :class:`DataError` naming
    the file and what is wrong.
    """
    root = resolve_root(root)
    csv_path = Path(labels_csv) if labels_csv is not None else find_labels_csv(root)
    flows_dir = root / "flows"
    if not flows_dir.is_dir():
        raise DataError(f"{flows_dir}: flows directory not found")
    rows = read_labels(csv_path)
    if not rows:
        raise DataError(f"{csv_path}: CSV has no samples")

    seen: dict[str, str] = {}
    images, labels, subjects, datasets, ids = [], [], [], [], []
    size = (image_size, image_size) if image_size else None
    paths = []
    for rec in rows:
        where = f"{csv_path}, line {rec['_line']}"
        try:
            label = int(float(rec["label"]))
            if float(rec["label"]) != label:
                raise ValueError
        except ValueError:
            raise DataError(f"{where}: label {rec['label']!r} is not an integer class index") from None
        if not 0 <= label < len(CLASS_NAMES):
            raise DataError(f"{where}: unknown label {label} (expected 0..{len(CLASS_NAMES) - 1} = "
                            f"{', '.join(CLASS_NAMES)})")
        if not rec["sub"] or not rec["filename_o"]:
            raise DataError(f"{where}: empty 'sub' or 'filename_o'")
        sample_id = f"{rec['sub']}_{rec['filename_o']}"
        if sample_id in seen:
            raise DataError(f"{where}: duplicate sample id {sample_id!r} (first at line {seen[sample_id]})")
        seen[sample_id] = rec["_line"]
        path = flow_image_path(flows_dir, rec["sub"], rec["filename_o"])
        images.append(read_flow_image(path, size))
        paths.append(path)
        labels.append(label)
        subjects.append(rec["sub"])
        datasets.append(rec["dataset"].lower() or "unknown")
        ids.append(sample_id)

    _check_same_size(images, paths)
    subjects_arr = np.array(subjects)
    datasets_arr = np.array(datasets)
    _check_subjects_unique_per_dataset(subjects_arr, datasets_arr, csv_path)
    synthetic = set(datasets) == {"synthetic"}
    return FlowDataset(
        x=np.stack(images), labels=np.array(labels, dtype=np.int64), subjects=subjects_arr,
        datasets=datasets_arr, sample_ids=np.array(ids), name=name or root.name, root=root,
        synthetic=synthetic,
    )


def _check_same_size(images: list[np.ndarray], paths: list[Path]) -> None:
    # the majority size is the expected one, so the message names the odd file out
    shapes = [img.shape[1:] for img in images]
    common = max(set(shapes), key=shapes.count)
    for shape, path in zip(shapes, paths):
        if shape != common:
            raise DataError(f"{path}: image is {shape[0]}x{shape[1]}, expected {common[0]}x{common[1]} "
                            f"like the other images")


def _check_subjects_unique_per_dataset(subjects: np.ndarray, datasets: np.ndarray, csv_path: Path) -> None:
    # A subject id shared by two source datasets would merge two people into one LOSO fold.
    owner: dict[str, str] = {}
    for s, d in zip(subjects.tolist(), datasets.tolist()):
        if owner.setdefault(s, d) != d:
            raise DataError(f"{csv_path}: subject id {s!r} appears in datasets {owner[s]!r} and {d!r}; "
                            f"subject ids must be unique across datasets")


def load_dataset(data_root: str | os.PathLike | None = None, **kwargs) -> FlowDataset:
    """The dataset every command and notebook uses.

    ``data_root`` (or ``$AM3F_DATA``) selects real data; when neither is set we fall back to the
    embedded **synthetic** micro-expression set, generated once and cached.
    """
    if (data_root is None or str(data_root) == "") and not os.environ.get(DATA_ENV):
        from am3f.flow.synth import default_synthetic_root  # lazy: only needed without real data

        return load_flow_dataset(default_synthetic_root(), name="synthetic", **kwargs)
    return load_flow_dataset(data_root, **kwargs)


def parse_index_ranges(spec: str | int | Sequence[str | int] | None, n: int) -> list[int]:
    """'0-9,12' (or ['0-9', '12'], or 3 as papermill passes `-p folds 3`) -> sorted fold indices,
    each checked against 0..n-1."""
    if spec is None or spec == "" or spec == []:
        return list(range(n))
    if isinstance(spec, int):
        spec = str(spec)
    elif not isinstance(spec, str):
        spec = [str(s) for s in spec]
    parts: Iterable[str] = spec.split(",") if isinstance(spec, str) else ",".join(spec).split(",")
    out: set[int] = set()
    for part in parts:
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(p) for p in part.split("-", 1))
                chosen = range(lo, hi + 1)
            else:
                chosen = [int(part)]
        except ValueError:
            raise DataError(f"bad fold range {part!r} (use e.g. 0-9,12)") from None
        for i in chosen:
            if not 0 <= i < n:
                raise DataError(f"fold {i} out of range: this dataset has folds 0..{n - 1}")
            out.add(i)
    return sorted(out)
