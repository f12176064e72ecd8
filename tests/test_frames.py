"""Reading frames and GIF pairs, cropping the face, spotting the apex; every bad input is one DataError line."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from am3f.errors import DataError
from am3f.flow.frames import (
    crop_pair,
    detect_face,
    list_clip_frames,
    load_pair,
    read_clip,
    read_frame,
    read_gif_pair,
    spot_apex,
    spot_apex_in_folder,
    trim_canvas,
)

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("AM3F_SHARED", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="module")
def real_frames() -> Path:
    root = shared_data_dir() / "real-onset-apex"
    if not root.is_dir():
        pytest.skip(f"real frames not found at {root} (set AM3F_SHARED)")
    return root


def one_line_error_naming(exc: pytest.ExceptionInfo, path) -> None:
    msg = str(exc.value)
    assert str(path) in msg, msg
    assert "\n" not in msg


def synthetic_clip(amplitudes, seed=0, size=96):
    """Frames of a procedural face whose AU12 motion has the given amplitude per frame (px)."""
    from am3f.flow.synth import _to_uint8, displacement, make_identity, make_pair, render_face

    ident = make_identity(np.random.default_rng(seed))
    face = render_face(ident, size)
    frames = []
    for a in amplitudes:
        dx, dy = displacement(ident, {"AU12": a}, size) if a else (np.zeros((size, size)),) * 2
        frames.append(_to_uint8(make_pair(face, dx, dy)[0]))
    return frames


def test_unreadable_frame(tmp_path):
    bad = tmp_path / "img1.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError) as exc:
        read_frame(bad)
    one_line_error_naming(exc, bad)
    with pytest.raises(DataError) as exc:
        read_frame(tmp_path / "absent.png")
    one_line_error_naming(exc, tmp_path / "absent.png")


def test_gif_pair_round_trip_and_single_frame_gif(tmp_path):
    a, b = synthetic_clip([0, 1.5])
    gif = tmp_path / "pair.gif"
    Image.fromarray(a).save(gif, save_all=True, append_images=[Image.fromarray(b)])
    onset, apex = read_gif_pair(gif)
    assert onset.shape == a.shape and np.abs(onset.astype(int) - a).max() <= 1
    assert np.abs(apex.astype(int) - b).max() <= 1
    single = tmp_path / "single.gif"
    Image.fromarray(a).save(single)
    with pytest.raises(DataError) as exc:
        read_gif_pair(single)
    one_line_error_naming(exc, single)


def test_empty_clip_folder_and_natural_order(tmp_path):
    empty = tmp_path / "EP01_01"
    empty.mkdir()
    with pytest.raises(DataError) as exc:
        list_clip_frames(empty)
    one_line_error_naming(exc, empty)
    for n in (10, 9, 1):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(empty / f"reg_img{n}.jpg")
    assert [p.name for p in list_clip_frames(empty)] == ["reg_img1.jpg", "reg_img9.jpg", "reg_img10.jpg"]


def test_clip_with_frames_of_different_size(tmp_path):
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "1.png")
    Image.fromarray(np.zeros((20, 21), np.uint8)).save(tmp_path / "2.png")
    with pytest.raises(DataError) as exc:
        read_clip(tmp_path)
    one_line_error_naming(exc, tmp_path / "2.png")


def test_onset_apex_of_different_sizes(tmp_path):
    on, ap = tmp_path / "on.png", tmp_path / "ap.png"
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(on)
    Image.fromarray(np.zeros((40, 44), np.uint8)).save(ap)
    with pytest.raises(DataError) as exc:
        load_pair(on, ap, detect=False)
    one_line_error_naming(exc, ap)


def test_no_face_found(tmp_path):
    noise = (np.random.default_rng(0).random((120, 120)) * 255).astype(np.uint8)
    path = tmp_path / "onset.png"
    Image.fromarray(noise).save(path)
    with pytest.raises(DataError) as exc:
        load_pair(path, path)
    one_line_error_naming(exc, path)
    assert "no face" in str(exc.value)
    pair = load_pair(path, path, detect=False)  # pre-cropped frames: no detector, whole frame
    assert pair.onset.shape == (120, 120) and pair.box == (0, 0, 120, 120)


def test_trim_canvas_cuts_a_flat_border():
    img = np.full((100, 120), 240, np.uint8)
    img[10:70, 30:80] = (np.random.default_rng(0).random((60, 50)) * 200).astype(np.uint8)
    trimmed, box = trim_canvas(img)
    assert box == (30, 10, 50, 60) and trimmed.shape == (60, 50)
    flat = np.full((50, 50), 7, np.uint8)
    assert trim_canvas(flat)[1] == (0, 0, 50, 50)


def test_crop_uses_the_same_box_for_onset_and_apex():
    a, b = synthetic_clip([0, 2.0])
    canvas_a, canvas_b = np.full((150, 150), 240, np.uint8), np.full((150, 150), 240, np.uint8)
    canvas_a[20:116, 30:126], canvas_b[20:116, 30:126] = a, b
    pair = crop_pair(canvas_a, canvas_b, detect=False)
    assert pair.box == (30, 20, 96, 96)
    np.testing.assert_array_equal(pair.onset, a)
    np.testing.assert_array_equal(pair.apex, b)


def test_spot_apex_on_synthetic_clip_with_known_apex():
    amps = [0, 0.3, 0.8, 1.4, 2.0, 1.5, 0.9, 0.4]
    idx, scores = spot_apex(synthetic_clip(amps, seed=1), detect=False)
    assert idx == 4
    assert scores[0] == 0 and np.argsort(scores)[-1] == 4
    with pytest.raises(DataError):
        spot_apex(synthetic_clip([0]), detect=False, name="one-frame-clip")


@pytest.mark.real_data
def test_face_found_on_real_gif_and_clip(real_frames):
    onset, _ = read_gif_pair(real_frames / "006_006_1_2.gif")
    trimmed, box = trim_canvas(onset)
    assert box[2] < onset.shape[1] and box[3] < onset.shape[0]  # the grey canvas is gone
    x, y, w, h = detect_face(trimmed)
    assert w >= 0.6 * trimmed.shape[1] and h >= 0.6 * trimmed.shape[0]
    frame = read_frame(real_frames / "casme2-clip" / "001.jpg")
    x, y, w, h = detect_face(frame)
    assert w >= 0.6 * frame.shape[1]  # the face fills a CASME II crop; no eye-sized false hit


@pytest.mark.real_data
def test_spot_apex_on_real_clip(real_frames):
    onset, apex, scores = spot_apex_in_folder(real_frames / "casme2-clip")
    assert onset.name == "001.jpg"
    assert scores[0] == 0 and len(scores) == 10
    # the ten frames are the rising phase: motion relative to onset grows, the last frames peak
    assert apex.name in {"008.jpg", "009.jpg", "010.jpg"}
    assert scores[-1] > 2 * scores[1]
