"""Raw-dataset adapters: a licensed copy of CASME II, SAMM or SMIC-HS -> the composite layout.

Each adapter lists the clips (subject, clip name, MEGC2019 label, onset frame, apex frame or
none); :func:`extract` then reads onset and apex, crops the face, computes the flow and writes::

    OUT/flows/<sub>_<filename_o> .png     28x28, R = u, G = v, B = strain (min-max per channel)
    OUT/labels.csv                        dataset,sub,filename_o,label,emotion,onset_frame,apex_frame,apex_spotted
    OUT/.am3f-extract/<id>.json           per-sample record, written last: its presence = done
    OUT/extract-config.json               settings per dataset (a rerun with other settings is refused)

Expected input layouts (``--root`` points at the folder holding them):

* CASME II: the coding spreadsheet (``CASME2-coding-*.xlsx`` or a .csv export) with columns
  Subject, Filename, OnsetFrame, ApexFrame, Estimated Emotion, and the frames
  ``Cropped/subXX/EPxx_xx/reg_imgN.jpg`` (``CASME2_RAW_selected/.../imgN.jpg`` also works).
  Frames are already cropped faces, so face detection is off by default. A missing/invalid
  ApexFrame (CASME II writes "/" for a few clips) is spotted between onset and offset frame.
* SAMM: the FACS-codes spreadsheet (``SAMM_Micro_FACS_Codes_v2.xlsx`` or .csv; title rows above
  the header are skipped) with Subject, Filename, Onset Frame, Apex Frame, Estimated Emotion, and
  frames ``SAMM/<subject>/<filename>/*.jpg`` whose trailing number is the frame number.
* SMIC-HS: ``HS/sN/micro/{positive,negative,surprise}/<clip>/*.bmp``; no apex labels, so the
  apex is spotted (:func:`am3f.flow.frames.spot_apex`); the onset is the first frame.

Labels follow MEGC2019: positive = happiness; negative = disgust, repression, anger, contempt,
fear, sadness (and SMIC negative); surprise = surprise; all other emotions are dropped.
Subject/clip names follow the community set: ``sub01``/``EP02_01f``, ``006``/``006_1_2``,
``s01``/``s01_po_01``.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from am3f.errors import AM3FError, DataError
from am3f.utils import atomic_write, atomic_write_text

DATASETS = ("casme2", "samm", "smic")
EMOTION_TO_LABEL = {
    "happiness": 1, "happy": 1, "positive": 1,
    "disgust": 0, "repression": 0, "anger": 0, "contempt": 0, "fear": 0, "sadness": 0, "negative": 0,
    "surprise": 2,
}
SHEET_COLUMNS = {
    "casme2": ("Subject", "Filename", "OnsetFrame", "ApexFrame", "Estimated Emotion"),
    "samm": ("Subject", "Filename", "Onset Frame", "Apex Frame", "Estimated Emotion"),
}
DEFAULT_DETECT = {"casme2": False, "samm": True, "smic": True}
DEFAULT_MAX_SIDE = 384  # keeps CASME II (280x340) and SMIC crops native; shrinks big SAMM crops
STATE_DIR = ".am3f-extract"
# Starting a worker (spawn + importing OpenCV/scikit-image) costs ~1-2 s, the time of ~20 pairs;
# below this many clips per worker one process is faster.
POOL_MIN_CLIPS_PER_WORKER = 10
LABEL_COLUMNS = ("dataset", "sub", "filename_o", "label", "emotion", "onset_frame", "apex_frame", "apex_spotted")


@dataclass
class ClipJob:
    dataset: str
    sub: str
    filename_o: str
    label: int
    emotion: str
    clip_dir: str
    onset: int | None  # frame number (trailing digits of the file name); None = first frame
    apex: int | None  # None = spot it
    offset: int | None = None

    @property
    def sample_id(self) -> str:
        return f"{self.sub}_{self.filename_o}"


def emotion_label(emotion: str) -> int | None:
    """MEGC2019 3-class label of an emotion name, or None for classes MEGC2019 drops."""
    return EMOTION_TO_LABEL.get(str(emotion).strip().lower())


# ----------------------------------------------------------------------------- spreadsheets
def _norm(col: str) -> str:
    return re.sub(r"[\s_]+", "", str(col)).lower()


def find_sheet(root: Path, pattern_hint: str) -> Path:
    """The coding spreadsheet in ``root`` (prefer names containing ``pattern_hint``)."""
    cands = sorted(p for p in root.iterdir() if p.suffix.lower() in (".xlsx", ".xls", ".csv") and p.is_file()
                   and not p.name.startswith(("~$", ".")))
    if not cands:
        raise DataError(f"{root}: no coding spreadsheet (.xlsx or .csv) found; pass --sheet")
    hinted = [p for p in cands if pattern_hint in p.name.lower()]
    return (hinted or cands)[0]


def read_sheet(path: str | os.PathLike, required: Iterable[str], optional: Iterable[str] = ()) -> list[dict[str, str]]:
    """Rows of a coding spreadsheet (.xlsx/.xls/.csv) keyed by the required (and any present optional) columns.

    The header is the first row containing all required columns (matched ignoring case, spaces
    and underscores), so title rows above the table -- as in SAMM's sheet -- are skipped.
    """
    path = Path(path)
    required = tuple(required)
    if not path.is_file():
        raise DataError(f"{path}: spreadsheet not found")
    table = _read_table(path)
    want = {_norm(c): c for c in required}
    header_row, best = None, (-1, [])
    for i, row in enumerate(table[:30]):
        cells = [_norm(c) for c in row]
        found = [w for w in want if w in cells]
        if len(found) == len(want):
            header_row = i
            break
        if len(found) > best[0]:
            best = (len(found), [c for c in row if c.strip()])
    if header_row is None:
        have = best[1]
        missing = [want[w] for w in want if w not in {_norm(c) for c in have}]
        raise DataError(f"{path}: spreadsheet is missing column(s) {', '.join(missing)} "
                        f"(header has: {', '.join(have) or 'nothing'})")
    cells = [_norm(c) for c in table[header_row]]
    idx = {want[w]: cells.index(w) for w in want}
    idx.update({c: cells.index(_norm(c)) for c in optional if _norm(c) in cells})
    rows = []
    for i in range(header_row + 1, len(table)):
        row = table[i]
        rec = {name: (row[j].strip() if j < len(row) else "") for name, j in idx.items()}
        if not any(rec.values()):
            continue
        rec["_line"] = str(i + 1)
        rows.append(rec)
    return rows


def _read_table(path: Path) -> list[list[str]]:
    """All cells as strings; rows may differ in length (title rows above the header)."""
    if path.suffix.lower() == ".csv":
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                return [[c for c in r] for r in csv.reader(fh)]
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{path}: not a readable CSV file: {exc}") from None
    import pandas as pd

    try:
        table = pd.read_excel(path, header=None, dtype=str, keep_default_na=False)
    except ImportError as exc:
        raise DataError(f"{path}: reading .xlsx needs openpyxl (pip install openpyxl), "
                        f"or export the sheet as .csv ({exc})") from None
    except Exception as exc:  # pandas/openpyxl raise many types for a bad file
        raise DataError(f"{path}: cannot read spreadsheet: {exc}") from None
    return [["" if c is None else str(c) for c in row] for row in table.itertuples(index=False)]


def _int_or_none(s: str) -> int | None:
    try:
        f = float(str(s).strip())
    except ValueError:
        return None
    return int(f) if f == int(f) and f >= 0 else None


# ----------------------------------------------------------------------------- adapters
def _first_dir(root: Path, names: Iterable[str]) -> Path | None:
    for n in names:
        if (root / n).is_dir():
            return root / n
    return None


def _sheet_jobs(dataset: str, sheet: Path, frames_root: Path, subject_format: str,
                offset_column: str) -> list[ClipJob]:
    """Jobs of a spreadsheet-coded dataset (CASME II, SAMM): one per clip with a MEGC2019 class."""
    onset_col, apex_col = SHEET_COLUMNS[dataset][2:4]
    jobs = []
    for r in read_sheet(sheet, SHEET_COLUMNS[dataset], optional=(offset_column,)):
        label = emotion_label(r["Estimated Emotion"])
        if label is None:
            continue
        subj = r["Subject"]
        sub = subject_format.format(int(float(subj))) if _int_or_none(subj) is not None else subj
        jobs.append(ClipJob(dataset, sub, r["Filename"], label, r["Estimated Emotion"].lower(),
                            str(frames_root / sub / r["Filename"]), _int_or_none(r[onset_col]),
                            _int_or_none(r[apex_col]), _int_or_none(r.get(offset_column, ""))))
    return jobs


def casme2_jobs(root: Path, sheet: Path | None = None) -> list[ClipJob]:
    frames_root = _first_dir(root, ("Cropped", "cropped", "CASME2_RAW_selected", "CASME2-RAW"))
    if frames_root is None:
        raise DataError(f"{root}: no Cropped/ (or CASME2_RAW_selected/) folder with the CASME II frames")
    return _sheet_jobs("casme2", sheet or find_sheet(root, "casme"), frames_root, "sub{:02d}", "OffsetFrame")


def samm_jobs(root: Path, sheet: Path | None = None) -> list[ClipJob]:
    frames_root = _first_dir(root, ("SAMM", "samm")) or root
    return _sheet_jobs("samm", sheet or find_sheet(root, "samm"), frames_root, "{:03d}", "Offset Frame")


def smic_jobs(root: Path, sheet: Path | None = None) -> list[ClipJob]:
    hs = _first_dir(root, ("HS", "hs")) or root
    subjects = sorted(p for p in hs.iterdir() if p.is_dir() and re.fullmatch(r"s\d+", p.name))
    if not subjects:
        raise DataError(f"{hs}: no SMIC-HS subject folders (s1, s2, ...) found")
    jobs = []
    for sdir in subjects:
        sub = f"s{int(sdir.name[1:]):02d}"
        for emo in ("positive", "negative", "surprise"):
            edir = sdir / "micro" / emo
            if not edir.is_dir():
                continue
            for clip in sorted(p for p in edir.iterdir() if p.is_dir()):
                # community names pad the subject: s1_po_01 -> s01_po_01
                name = re.sub(r"^s(\d+)_", lambda m: f"s{int(m.group(1)):02d}_", clip.name)
                jobs.append(ClipJob("smic", sub, name, EMOTION_TO_LABEL[emo], emo, str(clip), None, None))
    if not jobs:
        raise DataError(f"{hs}: no clips under sN/micro/{{positive,negative,surprise}}/")
    return jobs


ADAPTERS = {"casme2": casme2_jobs, "samm": samm_jobs, "smic": smic_jobs}


# ----------------------------------------------------------------------------- one clip
def _frame_number(p: Path) -> int | None:
    m = re.search(r"(\d+)$", p.stem)
    return int(m.group(1)) if m else None


def _by_number(clip_dir: Path) -> tuple[list[Path], dict[int, Path]]:
    from am3f.flow.frames import list_clip_frames

    paths = list_clip_frames(clip_dir)
    return paths, {n: p for p in paths if (n := _frame_number(p)) is not None}


def process_clip(job: ClipJob, out: str, method: str = "tvl1", size: int = 28, detect: bool = True,
                 max_side: int = DEFAULT_MAX_SIDE) -> dict:
    """Onset/apex -> crop -> flow -> ``flows/<id> .png``; returns the sample's labels row."""
    import cv2

    from am3f.flow.frames import crop_pair, read_frame, spot_apex
    from am3f.flow.optical_flow import compute_flow, write_flow_png

    clip = Path(job.clip_dir)
    paths, numbered = _by_number(clip)
    if job.onset is None:
        onset_path = paths[0]
    elif job.onset in numbered:
        onset_path = numbered[job.onset]
    else:
        raise DataError(f"{clip}: no frame numbered {job.onset} (the onset in the spreadsheet)")
    spotted = job.apex is None
    if spotted:
        start = paths.index(onset_path)
        window = paths[start:]
        if job.offset is not None and job.offset in numbered:
            window = paths[start:paths.index(numbered[job.offset]) + 1]
        frames = [read_frame(p) for p in window]
        for p, f in zip(window[1:], frames[1:]):
            if f.shape != frames[0].shape:
                raise DataError(f"{p}: frame size {f.shape} differs from the onset's {frames[0].shape}")
        k, _ = spot_apex(frames, detect=detect, name=clip)
        apex_path = window[k]
    elif job.apex in numbered:
        apex_path = numbered[job.apex]
    else:
        raise DataError(f"{clip}: no frame numbered {job.apex} (the apex in the spreadsheet)")
    pair = crop_pair(read_frame(onset_path), read_frame(apex_path), detect=detect, trim=False,
                     names=(str(onset_path), str(apex_path)))
    onset, apex = pair.onset, pair.apex
    scale = max_side / max(onset.shape) if max_side and max(onset.shape) > max_side else 1.0
    if scale < 1.0:
        # big SAMM face crops would cost seconds of TV-L1 each; a 28x28 output needs far less
        wh = (max(8, round(onset.shape[1] * scale)), max(8, round(onset.shape[0] * scale)))
        onset = cv2.resize(onset, wh, interpolation=cv2.INTER_AREA)
        apex = cv2.resize(apex, wh, interpolation=cv2.INTER_AREA)
    flow = compute_flow(onset, apex, method, names=(str(onset_path), str(apex_path)))
    outp = Path(out)
    write_flow_png(outp / "flows" / f"{job.sample_id} .png", flow, size=size)
    row = {"dataset": job.dataset, "sub": job.sub, "filename_o": job.filename_o, "label": job.label,
           "emotion": job.emotion, "onset_frame": onset_path.name, "apex_frame": apex_path.name,
           "apex_spotted": int(spotted)}
    state = outp / STATE_DIR / f"{job.sample_id}.json"
    atomic_write_text(state, json.dumps(row))  # last: its presence means the PNG is complete
    return row


def _worker(args: tuple) -> tuple[str, dict | None, str | None]:
    job, kwargs = args
    try:
        return job.sample_id, process_clip(job, **kwargs), None
    except AM3FError as exc:
        return job.sample_id, None, str(exc)


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already; threads inside would oversubscribe


# ----------------------------------------------------------------------------- driver
def extract(dataset: str, root: str | os.PathLike, out: str | os.PathLike, *, workers: int = 1,
            method: str = "tvl1", size: int = 28, detect: bool | None = None, sheet: str | None = None,
            max_side: int = DEFAULT_MAX_SIDE, progress_bar: bool = True) -> dict:
    """Extract one raw dataset into ``out`` (resumable; other datasets' rows in labels.csv kept).

    Returns a summary dict (n_clips, n_done_before, n_new, n_failed, failures, labels_csv).
    Raises DataError after finishing the others if any clip failed.
    """
    from am3f.utils import progress

    if dataset not in ADAPTERS:
        raise AM3FError(f"unknown dataset {dataset!r} (choose from {', '.join(DATASETS)})")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: dataset root folder not found")
    out = Path(out).expanduser()
    detect = DEFAULT_DETECT[dataset] if detect is None else detect
    jobs = ADAPTERS[dataset](root, Path(sheet) if sheet else None)
    seen = {}
    for j in jobs:
        if j.sample_id in seen:
            raise DataError(f"{root}: clip {j.sample_id} listed twice")
        seen[j.sample_id] = j
    (out / "flows").mkdir(parents=True, exist_ok=True)
    (out / STATE_DIR).mkdir(exist_ok=True)
    _check_config(out, dataset, {"method": method, "size": size, "detect": detect, "max_side": max_side})

    rows: dict[str, dict] = {}
    todo = []
    for j in jobs:
        state = out / STATE_DIR / f"{j.sample_id}.json"
        if state.is_file() and (out / "flows" / f"{j.sample_id} .png").is_file():
            rows[j.sample_id] = json.loads(state.read_text())
        else:
            todo.append(j)
    n_before = len(rows)
    kwargs = {"out": str(out), "method": method, "size": size, "detect": detect, "max_side": max_side}
    failures: list[str] = []
    bar = progress(None, total=len(todo), desc=f"extract {dataset}", unit="clip", disable=not progress_bar) \
        if todo else None
    try:
        if workers <= 1 or len(todo) < POOL_MIN_CLIPS_PER_WORKER * workers:
            results = map(_worker, [(j, kwargs) for j in todo])
            _collect(results, rows, failures, bar)
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: a child forked after OpenCV/OpenMP started their thread pools in
            # this process can deadlock on a lock copied in the held state (seen here as a hang)
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
                _collect(pool.map(_worker, [(j, kwargs) for j in todo], chunksize=1), rows, failures, bar)
    finally:
        if bar is not None:
            bar.close()
        labels_csv = _write_labels(out, dataset, [rows[j.sample_id] for j in jobs if j.sample_id in rows])
    summary = {"dataset": dataset, "n_clips": len(jobs), "n_done_before": n_before,
               "n_new": len(rows) - n_before, "n_failed": len(failures), "failures": failures,
               "labels_csv": str(labels_csv)}
    if failures:
        raise DataError(f"{len(failures)} of {len(jobs)} clips failed (others written; rerun resumes); "
                        f"first: {failures[0]}")
    return summary


def _collect(results, rows: dict, failures: list, bar) -> None:
    for sid, row, err in results:
        if row is not None:
            rows[sid] = row
        else:
            failures.append(err)
        if bar is not None:
            bar.update(1)


def _check_config(out: Path, dataset: str, settings: dict) -> None:
    path = out / "extract-config.json"
    cfg = json.loads(path.read_text()) if path.is_file() else {}
    if dataset in cfg and cfg[dataset] != settings:
        raise AM3FError(f"{path}: {dataset} was extracted here with other settings {cfg[dataset]} "
                        f"(now {settings}); use a new --out")
    cfg[dataset] = settings
    path.write_text(json.dumps(cfg, indent=2))


def _write_labels(out: Path, dataset: str, new_rows: list[dict]) -> Path:
    path = out / "labels.csv"
    kept = []
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as fh:
            kept = [r for r in csv.DictReader(fh) if r.get("dataset") != dataset]

    def _write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(LABEL_COLUMNS), extrasaction="ignore")
            w.writeheader()
            w.writerows(kept + new_rows)

    return atomic_write(path, _write)
