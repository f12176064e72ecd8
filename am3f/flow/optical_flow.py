"""Optical flow between onset and apex: u, v and optical strain, and the 3-channel flow image.

Convention (the only one used anywhere in am3f): the flow describes how image content moves
**from onset to apex**, in pixels of the frames given: **+u = motion to the right, +v = motion
down**. So if ``apex(x, y) = onset(x - 1, y)`` (content shifted one pixel right), ``u = +1``.

All three methods are wrapped to follow it:

* ``tvl1`` (default) -- ``skimage.registration.optical_flow_tvl1(reference_image=onset,
  moving_image=apex)`` returns ``(v, u)`` (row, column) such that ``apex(p + flow) ~ onset(p)``.
  Checked with a synthetic shift (``tests/test_flow.py::test_sign_convention_right_and_down_are_positive``):
  a +1 px shift to the right gives ``u = +1``, so its output is our convention, only reordered.
* ``farneback`` and ``dis`` -- OpenCV's ``calcOpticalFlowFarneback(prev=onset, next=apex)`` and
  ``DISOpticalFlow.calc`` return ``(dx, dy)`` with ``next(p + flow) ~ prev(p)``: same convention.

Optical strain (the third channel): ``e_xx = du/dx``, ``e_yy = dv/dy``,
``e_xy = (du/dy + dv/dx) / 2`` and ``strain = sqrt(e_xx^2 + e_yy^2 + 2 e_xy^2)`` (central
differences, unit pixel spacing), taken on u, v smoothed with a Gaussian of ``strain_sigma``
= 1.5 px (see DEFAULT_STRAIN_SIGMA; 0 = raw differences).

Flow images (``flows/<id> .png``, read by :func:`read_flow_image`) store R = u,
G = v, B = strain as 8-bit values, resized to ``size`` x ``size`` (28 by default). Two ways to
map the floats to 0..255:

* ``minmax`` (default, what the MEGC2019 community composite images use): each channel of each
  image is stretched on its own so its minimum is 0 and maximum 255 (after resizing, as the
  community 28x28 images span exactly 0..255 per channel). Absolute magnitude is lost; a
  constant channel becomes 0.
* ``fixed`` (magnitude-preserving): u, v -> ``0.5 + u / (2 * flow_scale)`` and strain ->
  ``strain / strain_scale``, clipped to [0, 1]; with the defaults a displacement of +-2 px at the
  input resolution maps to 255 / 0 and zero motion to 128, strain 0..0.5 maps to 0..255. The
  values are in input-resolution pixels (before resizing), so crop the face to a consistent size
  if you compare magnitudes across clips.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from am3f.errors import AM3FError, DataError
from am3f.utils import atomic_write

METHODS: tuple[str, ...] = ("tvl1", "farneback", "dis")
NORMALISATIONS: tuple[str, ...] = ("minmax", "fixed")
DEFAULT_SIZE = 28
DEFAULT_FLOW_SCALE = 2.0  # px, `fixed` normalisation
DEFAULT_STRAIN_SCALE = 0.5  # strain units, `fixed` normalisation

# TV-L1 settings. skimage's defaults (num_warp=5, num_iter=10) cost ~0.1 s per 128x128 pair on
# one core; micro-expression motions are 0.5-2 px, so 2 warps per pyramid level converge as well
# (EPE ~0.03 px either way, benchmarks/bench_flow.py) at less than half the time, which is what
# lets extraction reach >= 10 pairs/s on 2 cores; it also matched the real reference images
# slightly better (u/v r 0.90/0.96 vs 0.89/0.94). Pass tvl1_params to override.
TVL1_DEFAULTS = dict(attachment=15.0, tightness=0.3, num_warp=2, num_iter=10, tol=1e-4, prefilter=False)
# Differentiating raw per-pixel TV-L1 flow amplifies its staircase noise; the community strain
# channel is much smoother. Derivative-of-Gaussian with sigma = 1.5 px raised the correlation of
# our strain with the two real reference images from 0.54 / 0.36 to 0.81 / 0.60 (u, v unchanged).
DEFAULT_STRAIN_SIGMA = 1.5


@dataclass
class FlowField:
    """Flow from onset to apex at the resolution of the frames: float32 (H, W) each, in pixels."""

    u: np.ndarray
    v: np.ndarray
    strain: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.u.shape)  # type: ignore[return-value]

    def stack(self) -> np.ndarray:
        """(3, H, W) float32 in (u, v, strain) order."""
        return np.stack([self.u, self.v, self.strain]).astype(np.float32)

    def magnitude(self) -> np.ndarray:
        return np.hypot(self.u, self.v)


# ----------------------------------------------------------------------------- flow
def to_grey(img: np.ndarray, name: str = "frame", float_scale: float | None = None) -> np.ndarray:
    """float32 grey from grey/RGB/RGBA: uint8/uint16 scaled to [0, 1]; float input divided by
    ``float_scale`` (default: 255 if its maximum exceeds 2, else taken as already ~[0, 1])."""
    a = np.asarray(img)
    if a.ndim == 3:
        if a.shape[2] == 4:
            a = a[..., :3]
        if a.shape[2] == 3:
            # ITU-R 601 luma, as PIL's convert("L") and cv2's RGB2GRAY use
            a = a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114
        elif a.shape[2] == 1:
            a = a[..., 0]
        else:
            raise DataError(f"{name}: expected grey, RGB or RGBA, got {a.shape[2]} channels")
    elif a.ndim != 2:
        raise DataError(f"{name}: expected a 2-D or 3-D image array, got shape {a.shape}")
    src_dtype = np.asarray(img).dtype
    a = a.astype(np.float32)
    if src_dtype == np.uint8:
        a /= 255.0
    elif src_dtype == np.uint16:
        a /= 65535.0
    else:
        # a 0..1 image interpolated with a cubic kernel overshoots 1 slightly, hence the margin
        scale = float_scale if float_scale is not None else (255.0 if a.size and a.max() > 2.0 else 1.0)
        a /= scale
    return a


def optical_strain(u: np.ndarray, v: np.ndarray, sigma: float = 0.0) -> np.ndarray:
    """Optical-strain magnitude sqrt(e_xx^2 + e_yy^2 + 2 e_xy^2) of a flow field.

    ``sigma`` > 0: Gaussian-smooth u, v (sigma in px) before differentiating.
    """
    u, v = u.astype(np.float64), v.astype(np.float64)
    if sigma > 0:
        from scipy.ndimage import gaussian_filter

        u, v = gaussian_filter(u, sigma, mode="nearest"), gaussian_filter(v, sigma, mode="nearest")
    du_dy, du_dx = np.gradient(u)
    dv_dy, dv_dx = np.gradient(v)
    e_xy = 0.5 * (du_dy + dv_dx)
    return np.sqrt(du_dx ** 2 + dv_dy ** 2 + 2.0 * e_xy ** 2).astype(np.float32)


def _as_uint8(g: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(g * 255.0), 0, 255).astype(np.uint8)


def compute_flow(onset: np.ndarray, apex: np.ndarray, method: str = "tvl1",
                 tvl1_params: dict | None = None, names: tuple[str, str] = ("onset", "apex"),
                 strain_sigma: float = DEFAULT_STRAIN_SIGMA) -> FlowField:
    """Flow from ``onset`` to ``apex`` (grey or colour arrays of the same size), see module doc.

    Returns u (+ right), v (+ down) in pixels and the optical-strain magnitude.
    """
    if method not in METHODS:
        raise AM3FError(f"unknown flow method {method!r} (choose from {', '.join(METHODS)})")
    # float frames share one scale so a pair is never brightened/darkened relative to each other
    fmax = max(float(np.max(onset)), float(np.max(apex))) if np.asarray(onset).dtype.kind == "f" else 0.0
    fscale = 255.0 if fmax > 2.0 else 1.0
    a, b = to_grey(onset, names[0], fscale), to_grey(apex, names[1], fscale)
    if a.shape != b.shape:
        raise DataError(f"{names[1]}: apex is {b.shape[0]}x{b.shape[1]} but onset {names[0]} is "
                        f"{a.shape[0]}x{a.shape[1]}; onset and apex must have the same size")
    if min(a.shape) < 8:
        raise DataError(f"{names[0]}: frame is {a.shape[0]}x{a.shape[1]}, too small for optical flow")
    if method == "tvl1":
        from skimage.registration import optical_flow_tvl1

        params = {**TVL1_DEFAULTS, **(tvl1_params or {})}
        v, u = optical_flow_tvl1(a, b, **params)
    else:
        import cv2

        a8, b8 = _as_uint8(a), _as_uint8(b)
        if method == "farneback":
            # pyramid down to ~1/4 only: motions are small, coarser levels just add blur
            flow = cv2.calcOpticalFlowFarneback(a8, b8, None, pyr_scale=0.5, levels=3, winsize=15,
                                                iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
        else:
            dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
            flow = dis.calc(a8, b8, None)
        u, v = flow[..., 0], flow[..., 1]
    u = np.ascontiguousarray(u, dtype=np.float32)
    v = np.ascontiguousarray(v, dtype=np.float32)
    return FlowField(u=u, v=v, strain=optical_strain(u, v, strain_sigma))


# ----------------------------------------------------------------------------- flow image
def resize_field(a: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Area-average (or bilinear when enlarging) a float field to size x size (or (h, w))."""
    import cv2

    h, w = (size, size) if isinstance(size, int) else size
    if a.shape == (h, w):
        return a.astype(np.float32)
    interp = cv2.INTER_AREA if h <= a.shape[0] and w <= a.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(a.astype(np.float32), (w, h), interpolation=interp)


def normalise_channels(chw: np.ndarray, mode: str = "minmax", flow_scale: float = DEFAULT_FLOW_SCALE,
                       strain_scale: float = DEFAULT_STRAIN_SCALE) -> np.ndarray:
    """(3, H, W) u, v, strain floats -> [0, 1] floats, per the module doc."""
    out = np.empty_like(chw, dtype=np.float32)
    if mode == "minmax":
        for c in range(chw.shape[0]):
            lo, hi = float(chw[c].min()), float(chw[c].max())
            out[c] = (chw[c] - lo) / (hi - lo) if hi > lo else 0.0
    elif mode == "fixed":
        if flow_scale <= 0 or strain_scale <= 0:
            raise AM3FError("flow_scale and strain_scale must be positive")
        out[0] = 0.5 + chw[0] / (2.0 * flow_scale)
        out[1] = 0.5 + chw[1] / (2.0 * flow_scale)
        out[2] = chw[2] / strain_scale
        np.clip(out, 0.0, 1.0, out=out)
    else:
        raise AM3FError(f"unknown normalisation {mode!r} (choose from {', '.join(NORMALISATIONS)})")
    return out


def flow_to_image(flow: FlowField, size: int | None = DEFAULT_SIZE, normalise: str = "minmax",
                  flow_scale: float = DEFAULT_FLOW_SCALE, strain_scale: float = DEFAULT_STRAIN_SCALE) -> np.ndarray:
    """uint8 (H, W, 3) image, R = u, G = v, B = strain; resized to size x size first (None: keep)."""
    chans = flow.stack()
    if size is not None:
        chans = np.stack([resize_field(c, size) for c in chans])
    norm = normalise_channels(chans, normalise, flow_scale, strain_scale)
    return np.clip(np.rint(norm * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0).copy()


def write_flow_png(path: str | os.PathLike, flow: FlowField | np.ndarray, size: int | None = DEFAULT_SIZE,
                   normalise: str = "minmax", **scales) -> Path:
    """Write a flow image PNG (R = u, G = v, B = strain) readable by :func:`read_flow_image`."""
    path = Path(path)
    img = flow if isinstance(flow, np.ndarray) else flow_to_image(flow, size, normalise, **scales)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise AM3FError(f"{path}: flow image must be uint8 (H, W, 3), got {img.dtype} {img.shape}")
    # PIL picks the format from the suffix; the temp name hides it, so say PNG explicitly
    atomic_write(path, lambda p: Image.fromarray(img, mode="RGB").save(p, format="PNG"))
    return path


def write_flow_npz(path: str | os.PathLike, flow: FlowField) -> Path:
    """float32 u, v, strain in pixels at the frames' resolution, un-normalised."""
    path = Path(path)

    def _save(p: Path) -> None:
        with open(p, "wb") as fh:
            np.savez_compressed(fh, u=flow.u.astype(np.float32), v=flow.v.astype(np.float32),
                                strain=flow.strain.astype(np.float32))

    atomic_write(path, _save)
    return path


def read_flow_npz(path: str | os.PathLike) -> FlowField:
    path = Path(path)
    try:
        with np.load(path) as z:
            return FlowField(u=z["u"], v=z["v"], strain=z["strain"] if "strain" in z
                             else optical_strain(z["u"], z["v"]))
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not a flow .npz with arrays u, v (, strain): {exc}") from None


# ----------------------------------------------------------------------------- flow images on disk
def flow_image_path(flows_dir: Path, sub: str, filename_o: str) -> Path:
    """Community name ``<sub>_<filename_o> .png`` (with the space); the space-less name also works."""
    spaced = flows_dir / f"{sub}_{filename_o} .png"
    if spaced.exists():
        return spaced
    plain = flows_dir / f"{sub}_{filename_o}.png"
    return plain if plain.exists() else spaced

def read_flow_image(path: Path, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """One flow PNG as float32 (3, H, W) in (u, v, strain) order, values in [0, 1]."""
    if not path.is_file():
        raise DataError(f"{path}: flow image not found")
    try:
        with Image.open(path) as im:
            im.load()
            mode, arr = im.mode, np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot decode image (corrupt or truncated?): {exc}") from None
    if mode != "RGB" or arr.ndim != 3 or arr.shape[2] != 3:
        channels = 1 if arr.ndim == 2 else arr.shape[2]
        raise DataError(f"{path}: expected a 3-channel RGB flow image (u, v, strain), "
                        f"got mode {mode} with {channels} channel(s)")
    if expected_size is not None and tuple(arr.shape[:2]) != tuple(expected_size):
        raise DataError(f"{path}: image is {arr.shape[0]}x{arr.shape[1]}, expected "
                        f"{expected_size[0]}x{expected_size[1]} like the other images")
    return (arr.astype(np.float32) / 255.0).transpose(2, 0, 1).copy()


def read_flow_input(path: str | os.PathLike, size: tuple[int, int]) -> np.ndarray:
    """What a model takes for one file: float32 (3, H, W) in [0, 1], (u, v, strain).

    A flow PNG is read as it is (it must already be ``size``); a ``.npz`` of raw u, v, strain
    (written by ``am3f flow --out X.npz``) is turned into the same 8-bit min-max image the
    composite set uses, at ``size``."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        if not path.is_file():
            raise DataError(f"{path}: flow file not found")
        img = flow_to_image(read_flow_npz(path), size=size[0])
        return (img.astype(np.float32) / 255.0).transpose(2, 0, 1).copy()
    return read_flow_image(path, tuple(size))


# ----------------------------------------------------------------------------- checks
def endpoint_error(flow: FlowField, u_true: np.ndarray, v_true: np.ndarray, border: int = 0) -> float:
    """Mean end-point error sqrt((u - u*)^2 + (v - v*)^2), ignoring ``border`` pixels at each edge."""
    sl = (slice(border, -border or None), slice(border, -border or None))
    err = np.hypot(flow.u[sl] - u_true[sl], flow.v[sl] - v_true[sl])
    return float(err.mean())


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def compare_to_reference(image: np.ndarray | str | os.PathLike,
                         reference: np.ndarray | str | os.PathLike) -> dict[str, float]:
    """Pearson r per channel (u, v, strain) between two flow images of the same size.

    Either argument may be a uint8 (H, W, 3) image or a PNG path (read with
    :func:`read_flow_image`, so R = u, G = v, B = strain). Typical use: our 28x28
    image of a real onset/apex pair vs the community reference ``flows/<id> .png``.
    """
    def _chw(x) -> np.ndarray:
        if isinstance(x, (str, os.PathLike)):
            return read_flow_image(Path(x))
        arr = np.asarray(x, dtype=np.float32)
        return arr.transpose(2, 0, 1) if arr.ndim == 3 and arr.shape[2] == 3 else arr

    a, b = _chw(image), _chw(reference)
    if a.shape != b.shape:
        raise DataError(f"flow images differ in size: {a.shape} vs {b.shape}")
    return {name: pearson(a[i], b[i]) for i, name in enumerate(("u", "v", "strain"))}


# the real GIFs that have a community reference flow image in megc2019-composite/flows
def reference_correlations(pairs, method: str = "tvl1"):
    """Pearson r per channel between our flow image of real onset/apex pairs and their reference images.

    ``pairs``: (sample name, onset/apex GIF, reference flow image) triples; a triple whose files are
    missing is left out. Returns a pandas DataFrame. Numbers only: nothing here draws the
    (licence-restricted, identifiable) faces."""
    import pandas as pd

    from am3f.flow.frames import load_pair

    rows = []
    for name, gif, ref in pairs:
        if not Path(gif).is_file() or not Path(ref).is_file():
            continue
        pair = load_pair(gif)
        ours = flow_to_image(compute_flow(pair.onset, pair.apex, method))
        r = compare_to_reference(ours, ref)
        rows.append({"sample": name, "method": method, **{f"r {k}": v for k, v in r.items()}})
    return pd.DataFrame(rows)
