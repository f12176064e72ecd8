"""A SYNTHETIC micro-expression set: procedural faces, action-unit-like motions, no downloads.

Nothing here is real data. It exists so every command, test and notebook runs without the
licence-restricted datasets, on a task with the same structure: 3 classes, subjects with their
own appearance, LOSO folds, flow images in the composite layout.

* One identity per subject: face shape and position, eye/brow/nose/mouth placement and size,
  skin tone, skin texture, illumination gradient and background differ.
* One sample = an onset frame and an apex frame. The apex is the onset warped by a smooth,
  local displacement field modelled on FACS action units, peak 0.5-2 px at the 112-px frame:

  - positive: AU12 lip-corner puller (mouth corners up and outwards);
  - negative: AU4 brow lowerer (inner brows down and together) and/or AU15 lip-corner
    depressor (mouth corners down);
  - surprise: AU1+2 brow raiser (brows up), usually with AU26 jaw drop (chin down).

  Negative also comes as AU9 nose wrinkler (+ weak AU4), positive sometimes adds AU6 cheek raiser.
* Nuisances that make it learnable but not trivial: per-sample intensity, left/right asymmetry
  (+-20%), a weaker distractor AU (any class's, or a blink; 20-70% of the main amplitude) in half
  of the samples, head jitter (translation sd 0.6 px, rotation sd 0.4 deg of the whole face),
  independent sensor noise (sd 1-3% of full scale) on both frames, 8-bit quantisation, and 10%
  "ambiguous" samples whose face shows another class's AUs than the label (as self-reported
  emotion labels of the real sets sometimes disagree with the AUs). So ~90% is the ceiling;
  a LOSO logistic regression on the 28x28 flow images reaches UF1 ~0.84 on the default set.
* Class balance like the MEGC2019 composite set: negative ~57%, positive ~25%, surprise ~18%.

Output (composite layout, so :func:`am3f.data.dataset.load_flow_dataset` reads it and marks it synthetic
because the dataset column is ``synthetic``)::

    OUT/labels.csv                        dataset,sub,filename_o,label,label_name,aus,intensity_px,
                                          au_amplitudes,ambiguous (1 = face shows another class's AUs)
    OUT/flows/<sub>_<filename_o> .png     28x28 flow image computed from the frames by am3f.flow.optical_flow
                                          (TV-L1, face box crop, min-max per channel like the real set)
    OUT/frames/<sub>_<filename_o>_onset.png, ..._apex.png   8-bit grey frames
    OUT/gt/<sub>_<filename_o>.npz         ground-truth u, v (float32 px, onset -> apex, full frame)
                                          and the face box (x, y, w, h) used for the crop
    OUT/README.txt, OUT/meta.json         what this is, parameters, generation time
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from am3f.errors import AM3FError
from am3f.utils import publish_dir

SYNTH_VERSION = 2  # bump whenever the generator changes: the cache dir name carries it
CACHE_ENV = "AM3F_CACHE"
CLASS_PROBS = (0.57, 0.25, 0.18)  # negative, positive, surprise (MEGC2019 composite: 250/109/83)
LABEL_NAMES = ("negative", "positive", "surprise")
DEFAULT_FRAME_SIZE = 112
DEFAULT_SAMPLES_PER_SUBJECT = (8, 22)  # inclusive range; ~15 per subject on average


# ----------------------------------------------------------------------------- identities
@dataclass
class Identity:
    cx: float  # face centre and semi-axes, in frame units ([-1, 1] across the frame)
    cy: float
    ax: float
    ay: float
    eye_x: float  # features in face units (x / ax, y / ay from the face centre)
    eye_y: float
    eye_w: float
    brow_gap: float
    brow_thick: float
    nose_y: float
    mouth_y: float
    mouth_w: float
    skin: float
    lip_dark: float
    tex_fine: float
    tex_mid: float
    light_dir: float
    light_gain: float
    background: float
    seed: int


def make_identity(rng: np.random.Generator) -> Identity:
    return Identity(
        cx=rng.normal(0, 0.03), cy=rng.normal(0.03, 0.03), ax=rng.uniform(0.60, 0.72), ay=rng.uniform(0.80, 0.90),
        eye_x=rng.uniform(0.33, 0.42), eye_y=rng.uniform(-0.28, -0.18), eye_w=rng.uniform(0.13, 0.18),
        brow_gap=rng.uniform(0.14, 0.20), brow_thick=rng.uniform(0.025, 0.045),
        nose_y=rng.uniform(0.18, 0.28), mouth_y=rng.uniform(0.46, 0.56), mouth_w=rng.uniform(0.24, 0.34),
        skin=rng.uniform(0.45, 0.75), lip_dark=rng.uniform(0.15, 0.3), tex_fine=rng.uniform(0.025, 0.05),
        tex_mid=rng.uniform(0.02, 0.05), light_dir=rng.uniform(0, 2 * np.pi), light_gain=rng.uniform(0.05, 0.3),
        background=rng.uniform(0.1, 0.9), seed=int(rng.integers(2**31)),
    )


def _blob(x: np.ndarray, y: np.ndarray, x0: float, y0: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-0.5 * (((x - x0) / sx) ** 2 + ((y - y0) / sy) ** 2))


def render_face(ident: Identity, size: int = DEFAULT_FRAME_SIZE) -> np.ndarray:
    """The identity's neutral face, float (size, size) in ~[0, 1], band-limited (for warping)."""
    rng = np.random.default_rng(ident.seed)
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    X, Y = np.meshgrid(coords, coords)
    fx, fy = (X - ident.cx) / ident.ax, (Y - ident.cy) / ident.ay  # face units
    r = np.sqrt(fx ** 2 + fy ** 2)
    face_mask = 1 / (1 + np.exp((r - 1) * 25))  # soft ellipse edge

    # skin: base tone, rounded shading towards the rim, pore-scale and mid-scale texture
    # (texture matters: flow needs something to track, as on real skin)
    skin = ident.skin * (1 - 0.25 * r ** 4)
    skin = skin + ident.tex_fine * gaussian_filter(rng.standard_normal((size, size)), 1.0) * 3
    skin = skin + ident.tex_mid * gaussian_filter(rng.standard_normal((size, size)), 4.0) * 8
    dark = np.zeros_like(X)
    for side in (-1, 1):
        ex = side * ident.eye_x
        dark += 0.55 * _blob(fx, fy, ex, ident.eye_y, ident.eye_w, 0.045)  # eye opening
        dark += 0.35 * _blob(fx, fy, ex, ident.eye_y, 0.045, 0.045)  # iris
        dark += 0.12 * _blob(fx, fy, ex, ident.eye_y + 0.07, ident.eye_w * 1.1, 0.035)  # lower lid shadow
        # brow: an arc above the eye, thicker on the inner side
        bx = np.clip((fx - ex) * side / (ident.eye_w * 1.6), -1.5, 1.5)
        arc_y = ident.eye_y - ident.brow_gap - 0.04 * (1 - bx ** 2)
        along = np.exp(-0.5 * (bx / 0.8) ** 6)
        dark += 0.5 * along * np.exp(-0.5 * ((fy - arc_y) / ident.brow_thick) ** 2)
        dark += 0.35 * _blob(fx, fy, side * 0.09, ident.nose_y, 0.04, 0.025)  # nostril
        dark += 0.08 * _blob(fx, fy, side * 0.1, ident.nose_y - 0.18, 0.03, 0.15)  # nose side shading
    # mouth: dark line with a slight smile/frown curve, lips as a wider soft band
    mx = fx / ident.mouth_w
    curve = ident.mouth_y - 0.02 * (1 - mx ** 2)
    along = np.exp(-0.5 * mx ** 8)
    dark += 0.55 * along * np.exp(-0.5 * ((fy - curve) / 0.018) ** 2)
    dark += ident.lip_dark * along * np.exp(-0.5 * ((fy - curve) / 0.06) ** 2)
    dark += 0.1 * _blob(fx, fy, 0, ident.mouth_y + 0.22, 0.2, 0.05)  # chin crease

    face = np.clip(skin - dark, 0.02, 1.0)
    bg = ident.background + 0.05 * gaussian_filter(rng.standard_normal((size, size)), 6.0) * 6
    img = face_mask * face + (1 - face_mask) * bg
    light = 1 + ident.light_gain * (np.cos(ident.light_dir) * X + np.sin(ident.light_dir) * Y)
    # a little blur: a real lens is band-limited, and cubic warping needs it to be exact
    return gaussian_filter(img * light, 0.6)


def face_box(ident: Identity, size: int = DEFAULT_FRAME_SIZE) -> tuple[int, int, int, int]:
    """The face's bounding box (x, y, w, h) in pixels, clipped to the frame."""
    x0 = int(np.floor((ident.cx - ident.ax + 1) / 2 * size))
    x1 = int(np.ceil((ident.cx + ident.ax + 1) / 2 * size))
    y0 = int(np.floor((ident.cy - ident.ay + 1) / 2 * size))
    y1 = int(np.ceil((ident.cy + ident.ay + 1) / 2 * size))
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(size, x1), min(size, y1)
    return x0, y0, x1 - x0, y1 - y0


# ----------------------------------------------------------------------------- action units
def _au_components(ident: Identity, au: str) -> list[tuple[float, float, float, float, float]]:
    """(x, y, dir_x, dir_y, sigma) in face units for one action unit (unit direction vectors)."""
    e, m = ident, []
    brow_y = e.eye_y - e.brow_gap - 0.04
    for side in (-1, 1):
        if au == "AU12":  # lip-corner puller: corners up and out
            m.append((side * e.mouth_w, e.mouth_y, side * 0.6, -0.8, 0.2))
        elif au == "AU15":  # lip-corner depressor: corners down
            m.append((side * e.mouth_w, e.mouth_y, side * 0.2, 0.98, 0.2))
        elif au == "AU4":  # brow lowerer: inner brows down and together
            m.append((side * (e.eye_x - 0.08), brow_y, -side * 0.5, 0.87, 0.2))
        elif au == "AU1+2":  # inner + outer brow raiser: whole brow up
            m.append((side * e.eye_x, brow_y, 0.0, -1.0, 0.25))
        elif au == "AU45":  # blink-like upper lid motion (a distractor)
            m.append((side * e.eye_x, e.eye_y - 0.03, 0.0, 1.0, 0.08))
        elif au == "AU9":  # nose wrinkler: skin beside the nose pulled up
            m.append((side * 0.12, e.nose_y - 0.12, 0.0, -1.0, 0.14))
        elif au == "AU6":  # cheek raiser: cheeks up and slightly out
            m.append((side * (e.eye_x + 0.05), e.eye_y + 0.2, side * 0.3, -0.95, 0.18))
    if au == "AU26":  # jaw drop: lower lip and chin down
        m.append((0.0, e.mouth_y + 0.25, 0.0, 1.0, 0.33))
    if not m:
        raise AM3FError(f"unknown action unit {au!r}")
    return m


DISTRACTORS = ("AU12", "AU15", "AU4", "AU1+2", "AU26", "AU45", "AU9", "AU6")
# Probability that a sample shows the action units of another class than its label: emotion
# labels of the real sets come from self-report plus AUs and are ambiguous for a share of clips.
AMBIGUOUS_P = 0.1


def displacement(ident: Identity, aus: dict[str, float], size: int = DEFAULT_FRAME_SIZE,
                 asym: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Sum of AU displacement fields (dx, dy) in pixels; ``aus`` maps AU -> peak amplitude in px."""
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    X, Y = np.meshgrid(coords, coords)
    fx, fy = (X - ident.cx) / ident.ax, (Y - ident.cy) / ident.ay
    dx, dy = np.zeros_like(X), np.zeros_like(X)
    for au, amp in aus.items():
        for x0, y0, ux, uy, s in _au_components(ident, au):
            a = amp * (1 + asym * np.sign(x0))  # one side of the face moves a bit more
            g = a * np.exp(-0.5 * ((fx - x0) ** 2 + (fy - y0) ** 2) / s ** 2)
            dx += g * ux
            dy += g * uy
    return dx, dy


def _rigid(size: int, shift: tuple[float, float], angle_deg: float, centre: tuple[float, float]):
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    t = np.deg2rad(angle_deg)
    cx, cy = centre
    rx = np.cos(t) * (xx - cx) - np.sin(t) * (yy - cy) + cx - xx + shift[0]
    ry = np.sin(t) * (xx - cx) + np.cos(t) * (yy - cy) + cy - yy + shift[1]
    return rx, ry


def make_pair(face: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apex = onset content moved by (dx, dy); returns (apex, u_true, v_true) onset -> apex.

    The warp is backward (apex(p) = onset(p - d(p))), so the forward flow u(q) satisfies
    u(q) = d(q + u(q)); a few fixed-point steps solve it to << 0.01 px for these smooth fields.
    """
    size = face.shape[0]
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    apex = map_coordinates(face, [yy - dy, xx - dx], order=3, mode="nearest")
    u, v = dx.copy(), dy.copy()
    for _ in range(4):
        at = [yy + v, xx + u]
        u, v = (map_coordinates(dx, at, order=1, mode="nearest"),
                map_coordinates(dy, at, order=1, mode="nearest"))
    return apex, u.astype(np.float32), v.astype(np.float32)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def sample_pair(ident: Identity, face: np.ndarray, label: int, rng: np.random.Generator,
                size: int = DEFAULT_FRAME_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                         dict, float, int]:
    """One onset/apex pair of class ``label``: (onset u8, apex u8, u, v, aus, intensity px, shown class).

    ``shown`` is the class whose AUs the face shows; it differs from ``label`` for ambiguous samples.
    """
    a = float(rng.uniform(0.5, 2.0))
    shown = label
    if rng.random() < AMBIGUOUS_P:
        shown = int(rng.choice([c for c in range(3) if c != label]))
    if shown == 0:
        pick = int(rng.choice(4, p=[0.35, 0.25, 0.2, 0.2]))
        aus = [{"AU4": a}, {"AU15": a}, {"AU4": a, "AU15": a * float(rng.uniform(0.5, 1))},
               {"AU9": a, "AU4": a * float(rng.uniform(0.3, 0.8))}][pick]
    elif shown == 1:
        aus = {"AU12": a}
        if rng.random() < 0.4:
            aus["AU6"] = a * float(rng.uniform(0.3, 0.8))
    else:
        aus = {"AU1+2": a}
        if rng.random() < 0.6:
            aus["AU26"] = a * float(rng.uniform(0.3, 1.0))
    if rng.random() < 0.5:
        d = str(rng.choice(DISTRACTORS))
        aus[d] = aus.get(d, 0.0) + a * float(rng.uniform(0.2, 0.7))
    dx, dy = displacement(ident, aus, size, asym=float(rng.uniform(-0.2, 0.2)))
    # head jitter: the whole head drifts a fraction of a pixel and turns a fraction of a degree
    centre = ((ident.cx + 1) / 2 * size, (ident.cy + 1) / 2 * size)
    rx, ry = _rigid(size, tuple(rng.normal(0, 0.6, 2)), float(rng.normal(0, 0.4)), centre)
    apex, u, v = make_pair(face, dx + rx, dy + ry)
    sigma = float(rng.uniform(0.01, 0.03))
    onset8 = _to_uint8(face + rng.normal(0, sigma, face.shape))
    apex8 = _to_uint8(apex * (1 + rng.normal(0, 0.005)) + rng.normal(0, sigma, face.shape))
    return onset8, apex8, u, v, {k: round(float(val), 3) for k, val in aus.items()}, a, shown


# ----------------------------------------------------------------------------- the set
README_TEXT = """SYNTHETIC micro-expression data set (am3f synthetic-v{version})
=================================================================

THIS IS NOT REAL DATA. Faces are procedurally generated; each sample is an onset frame and an
apex frame made by warping the onset with an action-unit-like displacement field (positive: lip-corner
puller; negative: brow lowerer / lip-corner depressor; surprise: brow raiser + jaw drop) plus head
jitter and sensor noise. Scores on it say nothing about real micro-expression recognition; it
exists so that the pipeline, tests and notebooks run without the licence-restricted datasets.

Generated by am3f.flow.synth.generate_synthetic(seed={seed}, n_subjects={n_subjects}).
Samples: {n} ({counts}); subjects: {n_subjects}. Frames {size}x{size}; flow images 28x28.
Layout: labels.csv, flows/<sub>_<filename_o> .png (R=u, G=v, B=strain, min-max per channel),
frames/ (onset/apex PNGs), gt/ (ground-truth flow .npz, float32 px, onset -> apex).
"""


def generate_synthetic(out_dir: str | os.PathLike, n_subjects: int = 16, seed: int = 0, *,
                       frame_size: int = DEFAULT_FRAME_SIZE,
                       samples_per_subject: tuple[int, int] = DEFAULT_SAMPLES_PER_SUBJECT,
                       flow_size: int = 28, method: str = "tvl1", progress_bar: bool = True) -> Path:
    """Write the synthetic set (see module doc) into ``out_dir``; deterministic given the arguments."""
    from PIL import Image

    from am3f.flow.optical_flow import compute_flow, write_flow_png
    from am3f.utils import progress

    if n_subjects < 2:
        raise AM3FError(f"n_subjects must be at least 2 for LOSO, got {n_subjects}")
    lo, hi = samples_per_subject
    if not 1 <= lo <= hi:
        raise AM3FError(f"bad samples_per_subject range {samples_per_subject}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise AM3FError(f"{out}: output directory exists and is not empty")
    t0 = time.time()
    for d in ("flows", "frames", "gt"):
        (out / d).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    plan = []
    for s in range(n_subjects):
        ident = make_identity(rng)
        n = int(rng.integers(lo, hi + 1))
        labels = rng.choice(3, size=n, p=CLASS_PROBS)
        plan.append((f"synth{s + 1:02d}", ident, labels, int(rng.integers(2**31))))

    rows, counts = [], np.zeros(3, dtype=int)
    total = sum(len(p[2]) for p in plan)
    bar = progress(None, total=total, desc="synthetic set", unit="pair", disable=not progress_bar)
    for sub, ident, labels, sub_seed in plan:
        face = render_face(ident, frame_size)
        box = face_box(ident, frame_size)
        srng = np.random.default_rng(sub_seed)
        for i, label in enumerate(labels.tolist()):
            onset, apex, u, v, aus, a, shown = sample_pair(ident, face, label, srng, frame_size)
            name = f"c{i + 1:03d}"
            sid = f"{sub}_{name}"
            Image.fromarray(onset).save(out / "frames" / f"{sid}_onset.png")
            Image.fromarray(apex).save(out / "frames" / f"{sid}_apex.png")
            np.savez_compressed(out / "gt" / f"{sid}.npz", u=u, v=v, box=np.array(box))
            x, y, w, h = box
            flow = compute_flow(onset[y:y + h, x:x + w], apex[y:y + h, x:x + w], method)
            write_flow_png(out / "flows" / f"{sid} .png", flow, size=flow_size)
            rows.append(["synthetic", sub, name, label, LABEL_NAMES[label], "+".join(sorted(aus)),
                         f"{a:.3f}", json.dumps(aus, sort_keys=True), int(shown != label)])
            counts[label] += 1
            bar.update(1)
    bar.close()
    with open(out / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dataset", "sub", "filename_o", "label", "label_name", "aus", "intensity_px", "au_amplitudes",
                    "ambiguous"])
        w.writerows(rows)
    count_txt = ", ".join(f"{n} {c}" for n, c in zip(LABEL_NAMES, counts))
    (out / "README.txt").write_text(README_TEXT.format(version=SYNTH_VERSION, seed=seed, n_subjects=n_subjects,
                                                       n=len(rows), counts=count_txt, size=frame_size))
    meta = {"synthetic": True, "version": SYNTH_VERSION, "seed": seed, "n_subjects": n_subjects,
            "frame_size": frame_size, "samples_per_subject": list(samples_per_subject), "flow_size": flow_size,
            "method": method, "n_samples": len(rows), "class_counts": dict(zip(LABEL_NAMES, counts.tolist())),
            "generation_s": round(time.time() - t0, 2)}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return out


def cache_dir() -> Path:
    """$AM3F_CACHE, else ~/.cache/am3f."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "am3f"


def default_synthetic_root() -> Path:
    """The embedded default data set (generated once per machine into the cache, then reused).

    Generation goes to a temporary sibling directory that is renamed into place only when
    complete, so an interrupted run never leaves a half set behind (the next call starts over).
    """
    final = cache_dir() / f"synthetic-v{SYNTH_VERSION}"
    if (final / "labels.csv").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        print(f"generating the embedded SYNTHETIC data set into {final} (once; ~30 s)", file=sys.stderr, flush=True)
        generate_synthetic(tmp, n_subjects=16, seed=0)
        publish_dir(tmp, final)  # another process may have finished first: then theirs is used
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


# ----------------------------------------------------------------------------- reading the ground truth back
@dataclass
class SyntheticPair:
    """One synthetic sample's frames (full frame, uint8), face box and ground-truth flow (px)."""

    sample_id: str
    onset: np.ndarray
    apex: np.ndarray
    box: tuple[int, int, int, int]
    u_true: np.ndarray
    v_true: np.ndarray

    def crop(self, a: np.ndarray) -> np.ndarray:
        """``a`` (a frame or a flow field of the full frame) cut to the face box the flow image used."""
        x, y, w, h = self.box
        return a[y:y + h, x:x + w]


def ground_truth_root(data) -> Path | None:
    """The synthetic set's folder when ``data`` (a FlowDataset) carries ground truth (``gt/``), else None."""
    root = data.root
    return Path(root) if data.synthetic and root is not None and (Path(root) / "gt").is_dir() else None


def read_ground_truth(root: str | os.PathLike, sample_id: str
                      ) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """(u, v, face box) of a synthetic sample from ``gt/<id>.npz``: float32 px over the full frame."""
    path = Path(root) / "gt" / f"{sample_id}.npz"
    if not path.is_file():
        raise AM3FError(f"{path}: no ground truth (is {root} the synthetic set?)")
    with np.load(path) as z:
        return z["u"], z["v"], tuple(int(t) for t in z["box"])


def synthetic_pair(root: str | os.PathLike, sample_id: str) -> SyntheticPair:
    """Frames and ground truth of a synthetic sample (``frames/`` and ``gt/`` of the synthetic set)."""
    from am3f.flow.frames import read_frame

    root = Path(root)
    u, v, box = read_ground_truth(root, sample_id)
    return SyntheticPair(sample_id, read_frame(root / "frames" / f"{sample_id}_onset.png"),
                         read_frame(root / "frames" / f"{sample_id}_apex.png"), box, u, v)


def onset_face(root: str | os.PathLike, sample_id: str) -> np.ndarray:
    """The synthetic onset frame cut to the face box the flow was computed on (uint8 grey).

    Only for the synthetic set: real faces must never be drawn into saved figures."""
    pair = synthetic_pair(root, sample_id)
    return pair.crop(pair.onset)


def remove_rigid_motion(u: np.ndarray, v: np.ndarray, keep: float = 0.6, iters: int = 5
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) minus the head's rigid motion (a translation and a small rotation), fitted robustly.

    u = tx - theta (y - cy), v = ty + theta (x - cx) is fitted by least squares, then refitted
    ``iters`` times on the ``keep`` share of pixels it explains best, so the action units (local,
    a minority of the frame) do not pull the fit. Used on the full frame, where most pixels (and
    all the background) move only rigidly."""
    h, w = u.shape
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    xx, yy = (xx - (w - 1) / 2).ravel(), (yy - (h - 1) / 2).ravel()
    n = h * w
    a = np.zeros((2 * n, 3))
    a[:n, 0], a[n:, 1], a[:n, 2], a[n:, 2] = 1.0, 1.0, -yy, xx
    b = np.concatenate([u.ravel(), v.ravel()]).astype(np.float64)
    use = np.ones(n, dtype=bool)
    for _ in range(iters):
        params = np.linalg.lstsq(a[np.concatenate([use, use])], b[np.concatenate([use, use])], rcond=None)[0]
        r = b - a @ params
        res = np.hypot(r[:n], r[n:])
        use = res <= np.quantile(res, keep)
    return r[:n].reshape(h, w).astype(np.float32), r[n:].reshape(h, w).astype(np.float32)


def true_motion_mask(root: str | os.PathLike, sample_id: str, size: int | tuple[int, int] = 28,
                     threshold: float = 0.3) -> np.ndarray:
    """Boolean (size, size) mask of where the face really moves in a synthetic sample.

    The ground truth includes the head jitter, a translation AND a rotation of the whole frame;
    :func:`remove_rigid_motion` takes both out, so what remains above ``threshold`` x its maximum is
    the action-unit motion (the main AUs and any distractor AU). The mask is cut to the same face
    box and resized like the flow image. (Why not the median flow: docs/design-choices.md.)"""
    from am3f.flow.optical_flow import resize_field

    u, v, (x, y, w, h) = read_ground_truth(root, sample_id)
    u, v = remove_rigid_motion(u, v)
    mag = resize_field(np.hypot(u[y:y + h, x:x + w], v[y:y + h, x:x + w]), size)
    return mag >= threshold * float(mag.max()) if mag.max() > 0 else np.zeros_like(mag, dtype=bool)


def flow_vs_truth(root: str | os.PathLike, sample_ids, methods=("tvl1",), border: int = 4):
    """End-point error (px) of each flow method against the synthetic ground truth, on the face crop.

    One row per (sample, method) as a pandas DataFrame; the crop's outer ``border`` pixels are
    ignored (no context there)."""
    import pandas as pd

    from am3f.flow.optical_flow import compute_flow, endpoint_error

    rows = []
    for sid in sample_ids:
        pair = synthetic_pair(root, sid)
        a, b = pair.crop(pair.onset), pair.crop(pair.apex)
        ut, vt = pair.crop(pair.u_true), pair.crop(pair.v_true)
        for m in methods:
            flow = compute_flow(a, b, m)
            rows.append({"sample_id": sid, "method": m, "EPE px": endpoint_error(flow, ut, vt, border),
                         "true max motion px": float(np.hypot(ut, vt).max())})
    return pd.DataFrame(rows)
