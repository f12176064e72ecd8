"""Optical flow: sign convention, accuracy on known motion, strain, flow images, real references."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter, map_coordinates

from am3f.errors import AM3FError, DataError
from am3f.flow.optical_flow import (
    METHODS,
    FlowField,
    compare_to_reference,
    compute_flow,
    endpoint_error,
    flow_to_image,
    optical_strain,
    read_flow_image,
    read_flow_npz,
    write_flow_npz,
    write_flow_png,
)

REPO = Path(__file__).resolve().parents[1]
REFERENCE_IDS = ("006_006_1_2", "s03_s03_po_11")


def shared_data_dir() -> Path:
    return Path(os.environ.get("AM3F_SHARED", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="module")
def real_pairs() -> Path:
    root = shared_data_dir()
    if not (root / "real-onset-apex").is_dir() or not (root / "megc2019-composite" / "flows").is_dir():
        pytest.skip(f"real data not found at {root} (set AM3F_SHARED)")
    return root


def texture(n: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = gaussian_filter(rng.random((n, n)), 1.5) + 0.5 * gaussian_filter(rng.random((n, n)), 4)
    return (img - img.min()) / (img.max() - img.min())


def warp(img: np.ndarray, dx, dy) -> np.ndarray:
    """apex(p) = img(p - d): content moves by +d."""
    yy, xx = np.mgrid[:img.shape[0], :img.shape[1]].astype(float)
    return map_coordinates(img, [yy - dy, xx - dx], order=3, mode="reflect")


@pytest.mark.parametrize("method", METHODS)
def test_sign_convention_right_and_down_are_positive(method):
    img = texture()
    flow = compute_flow(img, warp(img, 1.0, 0.5), method)
    inner = (slice(12, -12), slice(12, -12))
    assert flow.u[inner].mean() == pytest.approx(1.0, abs=0.1)
    assert flow.v[inner].mean() == pytest.approx(0.5, abs=0.1)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("amp", [0.5, 1.0, 2.0])
def test_endpoint_error_on_local_smooth_motion(method, amp):
    n = 112
    img = texture(n, seed=int(amp * 10))
    yy, xx = np.mgrid[:n, :n].astype(float)
    g = np.exp(-((xx - 60) ** 2 + (yy - 50) ** 2) / (2 * 18 ** 2))
    dx, dy = amp * 0.6 * g, -amp * 0.8 * g  # an "AU12"-like bump: up and to the right
    apex = warp(img, dx, dy)
    flow = compute_flow(img, apex, method)
    assert endpoint_error(flow, dx, dy, border=8) <= 0.2


def test_endpoint_error_on_synthetic_faces():
    """Procedural faces (little texture, like skin) with AU motions of 0.5-2 px: TV-L1 EPE <= 0.2 px."""
    from am3f.flow.synth import displacement, make_identity, make_pair, render_face

    rng = np.random.default_rng(3)
    errs = []
    for amp, au in [(0.5, "AU12"), (1.0, "AU4"), (1.5, "AU1+2"), (2.0, "AU15")]:
        ident = make_identity(rng)
        face = render_face(ident, 112)
        dx, dy = displacement(ident, {au: amp}, 112)
        apex, u, v = make_pair(face, dx, dy)
        flow = compute_flow(face, apex, "tvl1")
        errs.append(endpoint_error(flow, u, v, border=8))
    assert max(errs) <= 0.2, errs


def test_uint8_and_colour_frames_give_the_same_flow_as_grey_float():
    img = texture()
    apex = warp(img, 1.0, 0.0)
    a8, b8 = (np.clip(img * 255, 0, 255).astype(np.uint8), np.clip(apex * 255, 0, 255).astype(np.uint8))
    grey = compute_flow(a8, b8)
    colour = compute_flow(np.repeat(a8[..., None], 3, 2), np.repeat(b8[..., None], 3, 2))
    np.testing.assert_allclose(grey.u, colour.u, atol=1e-3)
    assert grey.u[12:-12, 12:-12].mean() == pytest.approx(1.0, abs=0.1)


def test_strain_of_known_fields():
    yy, xx = np.mgrid[:32, :32].astype(np.float32)
    np.testing.assert_allclose(optical_strain(0.1 * xx, 0 * xx), 0.1, atol=1e-6)  # e_xx = 0.1
    np.testing.assert_allclose(optical_strain(0 * xx, 0.2 * yy), 0.2, atol=1e-6)  # e_yy = 0.2
    # pure shear u = b*y: e_xy = b/2, magnitude sqrt(2 (b/2)^2) = b / sqrt(2)
    np.testing.assert_allclose(optical_strain(0.3 * yy, 0 * xx), 0.3 / np.sqrt(2), atol=1e-6)
    # smoothing does not change the strain of a linear field (away from the edges)
    s = optical_strain(0.1 * xx, 0 * xx, sigma=1.5)
    np.testing.assert_allclose(s[6:-6, 6:-6], 0.1, atol=1e-4)


def _field(n=64, seed=0) -> FlowField:
    rng = np.random.default_rng(seed)
    u = gaussian_filter(rng.standard_normal((n, n)), 4).astype(np.float32)
    v = gaussian_filter(rng.standard_normal((n, n)), 4).astype(np.float32)
    return FlowField(u, v, optical_strain(u, v))


def test_minmax_image_spans_full_range_per_channel_and_keeps_order():
    img = flow_to_image(_field(), size=28)
    assert img.shape == (28, 28, 3) and img.dtype == np.uint8
    assert (img.reshape(-1, 3).min(0) == 0).all() and (img.reshape(-1, 3).max(0) == 255).all()


def test_fixed_normalisation_keeps_magnitude():
    zero = FlowField(*(np.zeros((40, 40), np.float32) for _ in range(3)))
    img = flow_to_image(zero, size=28, normalise="fixed")
    assert (img[..., :2] == 128).all() and (img[..., 2] == 0).all()
    one = FlowField(np.ones((40, 40), np.float32), -np.ones((40, 40), np.float32), np.zeros((40, 40), np.float32))
    img = flow_to_image(one, size=28, normalise="fixed")  # +-1 px with the 2 px scale -> 0.75 / 0.25
    assert img[..., 0].mean() == pytest.approx(191, abs=1) and img[..., 1].mean() == pytest.approx(64, abs=1)
    with pytest.raises(AM3FError):
        flow_to_image(zero, normalise="bogus")


def test_png_is_read_back_by_the_composite_loader_as_u_v_strain(tmp_path):
    f = _field()
    path = write_flow_png(tmp_path / "x_y .png", f, size=28)
    arr = read_flow_image(path, expected_size=(28, 28))
    assert arr.shape == (3, 28, 28)
    from am3f.flow.optical_flow import resize_field

    assert np.corrcoef(arr[0].ravel(), resize_field(f.u, 28).ravel())[0, 1] > 0.99
    assert np.corrcoef(arr[1].ravel(), resize_field(f.v, 28).ravel())[0, 1] > 0.99
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temp file


def test_npz_round_trip_is_unnormalised(tmp_path):
    f = _field()
    g = read_flow_npz(write_flow_npz(tmp_path / "f.npz", f))
    np.testing.assert_array_equal(f.u, g.u)
    np.testing.assert_array_equal(f.strain, g.strain)


def test_different_sizes_is_a_one_line_error_naming_the_apex():
    with pytest.raises(DataError) as exc:
        compute_flow(np.zeros((40, 40)), np.zeros((40, 41)), names=("on.png", "ap.png"))
    assert "ap.png" in str(exc.value) and "\n" not in str(exc.value)


def test_unknown_method():
    with pytest.raises(AM3FError, match="unknown flow method"):
        compute_flow(np.zeros((40, 40)), np.zeros((40, 40)), "horn")


def test_compare_to_reference_identical_images():
    img = flow_to_image(_field())
    r = compare_to_reference(img, img)
    assert r == pytest.approx({"u": 1.0, "v": 1.0, "strain": 1.0})


# ----------------------------------------------------------------------------- real data
# Measured (TV-L1 defaults, canvas trimmed, no face detector): 006_006_1_2 u 0.90 v 0.96 strain 0.81;
# s03_s03_po_11 u 0.86 v 0.93 strain 0.59. With the Haar face box (+10% margin) u/v are 0.90/0.94
# and 0.86/0.91. Guards sit a little below.
@pytest.mark.real_data
@pytest.mark.parametrize("sample", REFERENCE_IDS)
@pytest.mark.parametrize("detect", [False, True])
def test_real_gif_flow_correlates_with_the_community_reference(real_pairs, sample, detect, tmp_path):
    from am3f.app.cli import main

    out = tmp_path / "flow.png"
    argv = ["flow", str(real_pairs / "real-onset-apex" / f"{sample}.gif"), "--out", str(out)]
    assert main(argv + ([] if detect else ["--no-face-detect"])) == 0
    r = compare_to_reference(out, real_pairs / "megc2019-composite" / "flows" / f"{sample} .png")
    assert r["u"] >= 0.8 and r["v"] >= 0.85, r
    assert r["strain"] >= 0.5, r
