"""Frames in: reading onset/apex frames and clips, cropping the face, spotting the apex.

* Frames are read as 8-bit grey (flow works on luminance); jpg/png/bmp/tif and 2-frame GIFs
  (frame 0 = onset, frame 1 = apex) are accepted.
* Face crop: OpenCV's frontal-face Haar cascade (shipped inside the opencv wheel) finds the face
  on the **onset** frame; onset and apex are cut with the **same** box (plus a margin), so the
  crop itself never creates motion. ``detect=False`` skips this for pre-cropped frames.
* Figure captures (a face picture pasted on a flat light-grey canvas, like the GIFs in
  ``real-onset-apex/``) are trimmed to the picture first by :func:`trim_canvas`.
* Apex spotting (clips without an apex label): the frame whose motion relative to the onset
  (first frame) is largest, measured as the **mean DIS optical-flow magnitude in pixels over the
  face crop** (DIS: ~3 ms per frame pair, so a 100-frame clip costs well under a second).

Every user error raises :class:`am3f.errors.DataError` with a one-line message naming the path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from am3f.errors import DataError

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif")
DETECT_MAX_SIDE = 640  # frames are shrunk to this for face detection only
DEFAULT_MARGIN = 0.1  # fraction of the detected box added on each side (brows/chin are often cut)

Box = tuple[int, int, int, int]  # x, y, w, h


# ----------------------------------------------------------------------------- reading
def _natural_key(p: Path) -> list:
    # reg_img10.jpg must come after reg_img9.jpg
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def read_frame(path: str | os.PathLike) -> np.ndarray:
    """One frame as uint8 grey (H, W). For a GIF, its first frame."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: frame not found")
    try:
        with Image.open(path) as im:
            im.seek(0)
            return np.asarray(im.convert("L")).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot read frame (not an image, or corrupt): {exc}") from None


def read_gif_pair(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(onset, apex) from a GIF with at least two frames: frame 0 = onset, frame 1 = apex."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: GIF not found")
    try:
        with Image.open(path) as im:
            n = getattr(im, "n_frames", 1)
            if n < 2:
                raise DataError(f"{path}: GIF has {n} frame; need 2 (onset, apex)")
            frames = []
            for i in (0, 1):
                im.seek(i)
                frames.append(np.asarray(im.convert("L")).copy())
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read GIF (corrupt?): {exc}") from None
    return frames[0], frames[1]


def list_clip_frames(folder: str | os.PathLike) -> list[Path]:
    """Image files of a clip folder in natural order (img2 before img10)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: clip folder not found")
    frames = sorted((p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file()
                     and not p.name.startswith(".")), key=_natural_key)
    if not frames:
        raise DataError(f"{folder}: clip folder has no frames ({', '.join(FRAME_SUFFIXES)})")
    return frames


def read_clip(folder: str | os.PathLike) -> list[np.ndarray]:
    """All frames of a clip folder as uint8 grey, checked to share one size."""
    paths = list_clip_frames(folder)
    frames = [read_frame(p) for p in paths]
    for p, f in zip(paths[1:], frames[1:]):
        if f.shape != frames[0].shape:
            raise DataError(f"{p}: frame is {f.shape[0]}x{f.shape[1]}, but {paths[0].name} is "
                            f"{frames[0].shape[0]}x{frames[0].shape[1]}")
    return frames


# ----------------------------------------------------------------------------- cropping
def trim_canvas(img: np.ndarray, tol: int = 8, min_fraction: float = 0.2) -> tuple[np.ndarray, Box]:
    """Cut away a flat border whose colour equals the top-left pixel (figure-capture canvas).

    Returns the trimmed image and its box in the input. Images without such a border (or where
    trimming would leave less than ``min_fraction`` of either side) come back unchanged.
    """
    g = img if img.ndim == 2 else img.mean(axis=2)
    bg = float(g[0, 0])
    content = np.abs(g.astype(np.float32) - bg) > tol
    rows, cols = np.flatnonzero(content.any(axis=1)), np.flatnonzero(content.any(axis=0))
    h, w = g.shape
    if rows.size == 0 or cols.size == 0:
        return img, (0, 0, w, h)
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if (y1 - y0) < min_fraction * h or (x1 - x0) < min_fraction * w:
        return img, (0, 0, w, h)
    return img[y0:y1, x0:x1], (int(x0), int(y0), int(x1 - x0), int(y1 - y0))


_CASCADE = None


def _cascade():
    global _CASCADE
    if _CASCADE is None:
        import cv2

        path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        _CASCADE = cv2.CascadeClassifier(path)
        if _CASCADE.empty():
            raise DataError(f"{path}: cannot load OpenCV's face cascade (broken opencv install?)")
    return _CASCADE


def detect_face(img: np.ndarray, name: str | os.PathLike = "frame") -> Box:
    """Largest frontal face (x, y, w, h) on a uint8 grey frame; DataError naming ``name`` if none."""
    g = np.ascontiguousarray(img if img.ndim == 2 else img.mean(axis=2).astype(np.uint8))
    import cv2

    # Raw SAMM frames are 2040x1088; the cascade needs far less, and its cost grows with area.
    scale = min(1.0, DETECT_MAX_SIDE / max(g.shape))
    if scale < 1.0:
        small = cv2.resize(g, (round(g.shape[1] * scale), round(g.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        x, y, w, h = detect_face(small, name)
        x0, y0 = int(x / scale), int(y / scale)
        return x0, y0, min(g.shape[1] - x0, int(round(w / scale))), min(g.shape[0] - y0, int(round(h / scale)))
    # The cascade's window needs context around the face; on an already tightly cropped face
    # (the datasets' "cropped" frames) it finds nothing, so pad with the edge pixels first.
    pad = int(0.25 * max(g.shape))
    gp = cv2.copyMakeBorder(g, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    # A micro-expression frame is a close-up: the face is at least ~30% of the shorter side. The
    # size floor rejects the cascade's typical false hits (an eye, a nostril) on tight crops, and
    # with it 3 neighbours are enough to keep faces cut at the forehead/chin.
    min_side = max(24, int(0.3 * min(g.shape)))
    faces = _cascade().detectMultiScale(gp, scaleFactor=1.1, minNeighbors=3, minSize=(min_side, min_side))
    if len(faces) == 0:
        raise DataError(f"{name}: no face found; if the frames are already cropped to the face, skip detection "
                        f"with --no-face-detect")
    x, y, w, h = (int(t) for t in max(faces, key=lambda b: int(b[2]) * int(b[3])))
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(g.shape[1], x + w - pad), min(g.shape[0], y + h - pad)
    if x1 - x0 < 8 or y1 - y0 < 8:
        raise DataError(f"{name}: no face found inside the frame")
    return x0, y0, x1 - x0, y1 - y0


def expand_box(box: Box, margin: float, shape: tuple[int, int]) -> Box:
    """Grow a box by ``margin`` x its size on each side, clipped to the image."""
    x, y, w, h = box
    dx, dy = int(round(margin * w)), int(round(margin * h))
    x0, y0 = max(0, x - dx), max(0, y - dy)
    x1, y1 = min(shape[1], x + w + dx), min(shape[0], y + h + dy)
    return x0, y0, x1 - x0, y1 - y0


@dataclass
class CroppedPair:
    onset: np.ndarray
    apex: np.ndarray
    box: Box  # in the input frames (after canvas trimming offsets are added back)


def crop_pair(onset: np.ndarray, apex: np.ndarray, *, detect: bool = True, margin: float = DEFAULT_MARGIN,
              trim: bool = True, names: tuple[str, str] = ("onset", "apex")) -> CroppedPair:
    """Cut onset and apex with one box: canvas trim (optional), then the face found on the onset."""
    if onset.shape[:2] != apex.shape[:2]:
        raise DataError(f"{names[1]}: apex is {apex.shape[0]}x{apex.shape[1]} but onset {names[0]} is "
                        f"{onset.shape[0]}x{onset.shape[1]}; onset and apex must have the same size")
    ox, oy = 0, 0
    if trim:
        _, (ox, oy, tw, th) = trim_canvas(onset)
        onset, apex = onset[oy:oy + th, ox:ox + tw], apex[oy:oy + th, ox:ox + tw]
    if detect:
        x, y, w, h = expand_box(detect_face(onset, names[0]), margin, onset.shape[:2])
        onset, apex = onset[y:y + h, x:x + w], apex[y:y + h, x:x + w]
    else:
        x, y, h, w = 0, 0, onset.shape[0], onset.shape[1]
    return CroppedPair(onset=np.ascontiguousarray(onset), apex=np.ascontiguousarray(apex),
                       box=(ox + x, oy + y, w, h))


def load_pair(onset: str | os.PathLike, apex: str | os.PathLike | None = None, *, detect: bool = True,
              margin: float = DEFAULT_MARGIN, trim: bool = True) -> CroppedPair:
    """Read and crop an onset/apex pair: two frame files, or one 2-frame GIF (``apex=None``)."""
    onset = Path(onset)
    if not onset.is_file():
        raise DataError(f"{onset}: frame not found")
    if apex is None:
        if onset.suffix.lower() != ".gif":
            raise DataError(f"{onset}: give an apex frame too (or a 2-frame GIF: onset, apex)")
        a, b = read_gif_pair(onset)
        names = (str(onset), str(onset))
    else:
        a, b = read_frame(onset), read_frame(apex)
        names = (str(onset), str(apex))
    return crop_pair(a, b, detect=detect, margin=margin, trim=trim, names=names)


# ----------------------------------------------------------------------------- apex spotting
def motion_scores(frames: Sequence[np.ndarray], box: Box | None = None) -> np.ndarray:
    """Mean DIS flow magnitude (px) of every frame relative to frame 0, inside ``box`` if given."""
    import cv2

    if not frames:
        raise DataError("empty clip: no frames to spot an apex in")
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    if box is not None:
        x, y, w, h = box
        frames = [f[y:y + h, x:x + w] for f in frames]
    ref = np.ascontiguousarray(frames[0], dtype=np.uint8)
    scores = np.zeros(len(frames), dtype=np.float64)
    for i, f in enumerate(frames[1:], start=1):
        flow = dis.calc(ref, np.ascontiguousarray(f, dtype=np.uint8), None)
        scores[i] = float(np.hypot(flow[..., 0], flow[..., 1]).mean())
    return scores


def spot_apex(frames: Sequence[np.ndarray], *, detect: bool = True, margin: float = DEFAULT_MARGIN,
              name: str | os.PathLike = "clip") -> tuple[int, np.ndarray]:
    """Index of the apex frame (largest mean motion vs. frame 0 over the face) and all scores.

    Frame 0 is the onset. With ``detect`` the face box is found on frame 0 (DataError if none).
    """
    if len(frames) < 2:
        raise DataError(f"{name}: clip has {len(frames)} frame(s); need at least 2 to spot an apex")
    box = expand_box(detect_face(frames[0], name), margin, frames[0].shape[:2]) if detect else None
    scores = motion_scores(frames, box)
    return int(np.argmax(scores[1:]) + 1), scores


def spot_apex_in_folder(folder: str | os.PathLike, *, detect: bool = True) -> tuple[Path, Path, np.ndarray]:
    """(onset path, spotted apex path, scores) for a clip folder; the onset is its first frame."""
    paths = list_clip_frames(folder)
    if len(paths) < 2:
        raise DataError(f"{folder}: clip has only {len(paths)} frame; need at least 2")
    frames = read_clip(folder)
    idx, scores = spot_apex(frames, detect=detect, name=folder)
    return paths[0], paths[idx], scores
