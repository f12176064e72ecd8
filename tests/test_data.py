import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from am3f.data.dataset import CLASS_NAMES, load_flow_dataset, parse_index_ranges, resolve_root
from am3f.errors import DataError

from conftest import write_fake_composite


def test_loads_fake_composite_in_u_v_strain_order(fake_composite):
    data = load_flow_dataset(fake_composite)
    assert data.x.shape == (10, 3, 28, 28) and data.x.dtype == np.float32
    assert data.subject_ids == ["sub01", "sub02", "sub03"]
    assert data.sample_ids[0] == "sub01_EP00_0"
    png = np.asarray(Image.open(fake_composite / "flows" / "sub01_EP00_0 .png"))
    # channel 0 = R = u, channel 2 = B = strain; scaled to [0, 1]
    assert np.allclose(data.x[0, 0], png[..., 0] / 255.0)
    assert np.allclose(data.x[0, 2], png[..., 2] / 255.0)
    assert not data.synthetic


def test_environment_variable_gives_the_root(fake_composite, monkeypatch):
    monkeypatch.setenv("AM3F_DATA", str(fake_composite))
    assert len(load_flow_dataset()) == 10


def test_parent_of_composite_dir_is_accepted(tmp_path):
    write_fake_composite(tmp_path / "megc2019-composite", {"a": [0, 1]})
    assert resolve_root(tmp_path) == tmp_path / "megc2019-composite"


def test_official_gt_csv_without_header_restores_samm_zeros(tmp_path):
    root = write_fake_composite(tmp_path / "d", {"006": [0, 2]}, dataset="samm")
    gt = tmp_path / "gt.csv"
    gt.write_text("samm,6,EP00_0,0\nsamm,6,EP01_2,2\n".replace("EP00_0", "006_x").replace("EP01_2", "006_y"))
    # rename images to match the SAMM-style filenames used in the official file
    (root / "flows" / "006_EP00_0 .png").rename(root / "flows" / "006_006_x .png")
    (root / "flows" / "006_EP01_2 .png").rename(root / "flows" / "006_006_y .png")
    data = load_flow_dataset(root, labels_csv=gt)
    assert data.subjects.tolist() == ["006", "006"]
    assert data.labels.tolist() == [0, 2]


def test_real_composite_counts(composite_dir):
    data = load_flow_dataset(composite_dir)
    assert len(data) == 442 and len(data.subject_ids) == 68
    assert np.bincount(data.labels).tolist() == [250, 109, 83]
    per_ds = {d: int((data.datasets == d).sum()) for d in ("casme2", "samm", "smic")}
    assert per_ds == {"casme2": 145, "samm": 133, "smic": 164}
    gt = load_flow_dataset(composite_dir, labels_csv=composite_dir / "combined_3class_gt.csv")
    assert gt.sample_ids.tolist() == data.sample_ids.tolist()
    assert gt.labels.tolist() == data.labels.tolist()


def test_real_image_channels_follow_png_rgb(composite_dir):
    data = load_flow_dataset(composite_dir)
    i = data.sample_ids.tolist().index("006_006_1_2")
    png = np.asarray(Image.open(composite_dir / "flows" / "006_006_1_2 .png"))
    assert np.array_equal(np.round(data.x[i] * 255).astype(np.uint8), png.transpose(2, 0, 1))


# ---------------------------------------------------------------------------- bad input
def _rewrite_csv(root: Path, edit) -> None:
    path = root / "combined_3_class2_for_optical_flow.csv"
    rows = list(csv.reader(open(path)))
    rows = edit(rows)
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def _expect_error(root, match, **kw):
    with pytest.raises(DataError, match=match) as info:
        load_flow_dataset(root, **kw)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_data_directory(tmp_path):
    msg = _expect_error(tmp_path / "nope", "does not exist")
    assert str(tmp_path / "nope") in msg


def test_no_data_configured(monkeypatch):
    monkeypatch.delenv("AM3F_DATA", raising=False)
    with pytest.raises(DataError, match="AM3F_DATA"):
        load_flow_dataset(None)


def test_missing_labels_csv(tmp_path):
    (tmp_path / "flows").mkdir()
    _expect_error(tmp_path, "no labels CSV")


def test_missing_image(fake_composite):
    (fake_composite / "flows" / "sub02_EP01_0 .png").unlink()
    msg = _expect_error(fake_composite, "not found")
    assert "sub02_EP01_0" in msg


def test_corrupt_png(fake_composite):
    (fake_composite / "flows" / "sub01_EP01_1 .png").write_bytes(b"this is not a png")
    msg = _expect_error(fake_composite, "cannot decode")
    assert "sub01_EP01_1 .png" in msg


def test_truncated_png(fake_composite):
    path = fake_composite / "flows" / "sub01_EP01_1 .png"
    path.write_bytes(path.read_bytes()[:60])
    msg = _expect_error(fake_composite, "cannot decode")
    assert "sub01_EP01_1 .png" in msg


def test_wrong_image_size(fake_composite):
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(fake_composite / "flows" / "sub03_EP00_2 .png")
    msg = _expect_error(fake_composite, "32x32, expected 28x28")
    assert "sub03_EP00_2 .png" in msg


def test_wrong_channel_count(fake_composite):
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(fake_composite / "flows" / "sub01_EP00_0 .png")
    msg = _expect_error(fake_composite, "3-channel")
    assert "sub01_EP00_0 .png" in msg
    Image.fromarray(np.zeros((28, 28, 4), np.uint8)).save(fake_composite / "flows" / "sub01_EP00_0 .png")
    _expect_error(fake_composite, "4 channel")


def test_csv_missing_column(fake_composite):
    _rewrite_csv(fake_composite, lambda rows: [[c for i, c in enumerate(r) if i != 3] for r in rows])
    msg = _expect_error(fake_composite, "missing column.*label")
    assert "combined_3_class2_for_optical_flow.csv" in msg


def test_unknown_label(fake_composite):
    def edit(rows):
        rows[2][3] = "7"
        return rows
    _rewrite_csv(fake_composite, edit)
    msg = _expect_error(fake_composite, "unknown label 7")
    assert "line 3" in msg


def test_non_integer_label(fake_composite):
    def edit(rows):
        rows[1][3] = "happy"
        return rows
    _rewrite_csv(fake_composite, edit)
    _expect_error(fake_composite, "not an integer")


def test_duplicate_sample_id(fake_composite):
    _rewrite_csv(fake_composite, lambda rows: rows + [rows[1]])
    msg = _expect_error(fake_composite, "duplicate sample id 'sub01_EP00_0'")
    assert "first at line 2" in msg


def test_fold_ranges():
    assert parse_index_ranges("0-2,5", 10) == [0, 1, 2, 5]
    assert parse_index_ranges(["3", "1-2"], 10) == [1, 2, 3]
    assert parse_index_ranges(None, 3) == [0, 1, 2]
    assert parse_index_ranges(3, 10) == [3] and parse_index_ranges([0, "2-3"], 10) == [0, 2, 3]  # papermill ints
    with pytest.raises(DataError, match="out of range"):
        parse_index_ranges("0-12", 10)
    with pytest.raises(DataError, match="bad fold range"):
        parse_index_ranges("a-b", 10)


def test_class_names_are_megc_order():
    assert CLASS_NAMES == ("negative", "positive", "surprise")
