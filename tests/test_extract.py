"""Raw-dataset adapters on small fake trees that copy the real folder layouts and column names."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from am3f.data.dataset import load_flow_dataset
from am3f.errors import DataError
from am3f.flow.extract import emotion_label, extract, read_sheet

CASME_COLUMNS = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
                 "Estimated Emotion"]
SAMM_COLUMNS = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame",
                "Duration", "Type", "Action Units", "Notes", "Estimated Emotion"]
PROFILE = [0.0, 0.4, 1.0, 1.8, 1.2, 0.5]  # AU amplitude per frame: apex is the 4th frame


def write_clip(folder: Path, names: list[str], seed: int, au: str = "AU12", size: int = 96) -> None:
    from am3f.flow.synth import _to_uint8, displacement, make_identity, make_pair, render_face

    folder.mkdir(parents=True, exist_ok=True)
    ident = make_identity(np.random.default_rng(seed))
    face = render_face(ident, size)
    for name, a in zip(names, PROFILE):
        dx, dy = displacement(ident, {au: a}, size) if a else (np.zeros((size, size)),) * 2
        Image.fromarray(_to_uint8(make_pair(face, dx, dy)[0])).save(folder / name, quality=95)


def write_table(path: Path, header: list[str], rows: list[list], title_rows: int = 0) -> Path:
    if path.suffix == ".xlsx":
        pytest.importorskip("openpyxl")
        import openpyxl

        wb = openpyxl.Workbook()
        ws = wb.active
        for i in range(title_rows):
            ws.append([f"SAMM micro-movement FACS codes (title row {i})"])
        ws.append(header)
        for r in rows:
            ws.append(r)
        wb.save(path)
    else:
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            for i in range(title_rows):
                w.writerow([f"title row {i}"])
            w.writerow(header)
            w.writerows(rows)
    return path


def fake_casme2(root: Path, suffix: str = ".csv") -> Path:
    clips = [  # subject, clip, onset, apex, emotion
        (1, "EP02_01f", 46, 49, "happiness"), (1, "EP19_05f", 10, 13, "disgust"),
        (2, "EP01_11f", 5, "/", "repression"), (2, "EP03_02", 1, 4, "surprise"),  # "/" = no apex coded
        (2, "EP09_06", 1, 4, "others"),  # dropped by MEGC2019
    ]
    rows = []
    for k, (s, clip, on, ap, emo) in enumerate(clips):
        write_clip(root / "Cropped" / f"sub{s:02d}" / clip, [f"reg_img{on + i}.jpg" for i in range(6)], seed=k)
        rows.append([s, clip, on, ap, on + 5, "12", emo])
    write_table(root / f"CASME2-coding-20140508{suffix}", CASME_COLUMNS, rows)
    return root


def fake_samm(root: Path, suffix: str = ".xlsx") -> Path:
    clips = [(6, "006_1_2", 5562, 5565, "Anger"), (6, "006_1_3", 100, 103, "Happiness"),
             (7, "007_3_1", 2000, 2003, "Surprise"), (7, "007_5_2", 10, 13, "Other")]
    rows = []
    for k, (s, clip, on, ap, emo) in enumerate(clips):
        write_clip(root / "SAMM" / f"{s:03d}" / clip, [f"{s:03d}_{on + i:05d}.jpg" for i in range(6)], seed=10 + k)
        rows.append([s, clip, "1_2", on, ap, on + 5, 6, "Micro - 1/2", "AU4", "", emo])
    write_table(root / f"SAMM_Micro_FACS_Codes_v2{suffix}", SAMM_COLUMNS, rows, title_rows=3)
    return root


def fake_smic(root: Path) -> Path:
    for k, (s, emo, clip) in enumerate([(1, "positive", "s1_po_01"), (1, "negative", "s1_ne_02"),
                                        (3, "surprise", "s3_sur_01"), (3, "positive", "s3_po_11")]):
        names = [f"image{100 + i:06d}.bmp" for i in range(6)]
        write_clip(root / "HS" / f"s{s}" / "micro" / emo / clip, names, seed=20 + k)
    return root


def read_labels(out: Path) -> list[dict]:
    with open(out / "labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_emotion_mapping_is_megc2019():
    assert [emotion_label(e) for e in ("Happiness", "disgust", "Repression", "anger", "Contempt", "fear",
                                      "sadness", "negative", "Surprise")] == [1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert emotion_label("others") is None and emotion_label("tense") is None


def test_casme2_extract_resume_and_load(tmp_path, capsys):
    root, out = fake_casme2(tmp_path / "CASME2"), tmp_path / "out"
    summary = extract("casme2", root, out, workers=1, progress_bar=False)
    assert summary["n_clips"] == 4 and summary["n_new"] == 4
    rows = read_labels(out)
    assert [(r["sub"], r["filename_o"], r["label"]) for r in rows] == [
        ("sub01", "EP02_01f", "1"), ("sub01", "EP19_05f", "0"), ("sub02", "EP01_11f", "0"), ("sub02", "EP03_02", "2")]
    assert rows[0]["onset_frame"] == "reg_img46.jpg" and rows[0]["apex_frame"] == "reg_img49.jpg"
    assert rows[2]["apex_spotted"] == "1" and rows[2]["apex_frame"] == "reg_img8.jpg"  # spotted: PROFILE peak
    assert rows[0]["apex_spotted"] == "0"
    assert (out / "flows" / "sub01_EP02_01f .png").is_file()  # the community space before .png
    data = load_flow_dataset(out)
    assert len(data) == 4 and not data.synthetic and set(data.datasets) == {"casme2"}
    # rerun: everything cached
    again = extract("casme2", root, out, workers=1, progress_bar=False)
    assert again["n_done_before"] == 4 and again["n_new"] == 0
    # a sample deleted -> only that one is redone
    (out / "flows" / "sub02_EP03_02 .png").unlink()
    assert extract("casme2", root, out, workers=1, progress_bar=False)["n_new"] == 1


def test_samm_xlsx_with_title_rows_and_two_datasets_in_one_out(tmp_path, monkeypatch):
    import am3f.flow.extract

    monkeypatch.setattr(am3f.flow.extract, "POOL_MIN_CLIPS_PER_WORKER", 0)  # use the process pool even for 3 clips
    out = tmp_path / "out"
    extract("casme2", fake_casme2(tmp_path / "CASME2"), out, progress_bar=False)
    summary = extract("samm", fake_samm(tmp_path / "SAMM"), out, detect=False, workers=2, progress_bar=False)
    assert summary["n_clips"] == 3
    rows = read_labels(out)
    samm = [(r["sub"], r["filename_o"], r["label"]) for r in rows if r["dataset"] == "samm"]
    assert samm == [("006", "006_1_2", "0"), ("006", "006_1_3", "1"), ("007", "007_3_1", "2")]
    assert len(rows) == 7  # the CASME II rows are kept
    assert (out / "flows" / "006_006_1_2 .png").is_file()
    assert len(load_flow_dataset(out)) == 7


def test_smic_spots_the_apex(tmp_path):
    out = tmp_path / "out"
    extract("smic", fake_smic(tmp_path / "SMIC"), out, detect=False, progress_bar=False)
    rows = read_labels(out)
    assert sorted((r["sub"], r["filename_o"], r["label"]) for r in rows) == [
        ("s01", "s01_ne_02", "0"), ("s01", "s01_po_01", "1"), ("s03", "s03_po_11", "1"), ("s03", "s03_sur_01", "2")]
    assert all(r["apex_spotted"] == "1" and r["apex_frame"] == "image000103.bmp" for r in rows)
    assert (out / "flows" / "s03_s03_po_11 .png").is_file()


def test_spreadsheet_missing_a_column(tmp_path):
    header = [c for c in CASME_COLUMNS if c != "ApexFrame"]
    sheet = write_table(tmp_path / "coding.csv", header, [[1, "EP01", 1, 5, "x"]])
    with pytest.raises(DataError) as exc:
        read_sheet(sheet, ("Subject", "Filename", "OnsetFrame", "ApexFrame", "Estimated Emotion"))
    assert str(sheet) in str(exc.value) and "ApexFrame" in str(exc.value) and "\n" not in str(exc.value)


def test_missing_onset_frame_fails_that_clip_only(tmp_path):
    root, out = fake_casme2(tmp_path / "CASME2"), tmp_path / "out"
    (root / "Cropped" / "sub02" / "EP03_02" / "reg_img1.jpg").unlink()
    with pytest.raises(DataError) as exc:
        extract("casme2", root, out, progress_bar=False)
    assert "EP03_02" in str(exc.value) and "1 of 4" in str(exc.value) and "\n" not in str(exc.value)
    assert len(read_labels(out)) == 3  # the others were written


def test_no_face_found_with_detection_on(tmp_path):
    root, out = fake_samm(tmp_path / "SAMM", suffix=".csv"), tmp_path / "out"
    clip = root / "SAMM" / "006" / "006_1_3"
    rng = np.random.default_rng(0)
    for p in clip.iterdir():  # a clip with no face in it (noise)
        Image.fromarray((rng.random((96, 96)) * 255).astype(np.uint8)).save(p)
    with pytest.raises(DataError) as exc:
        extract("samm", root, out, progress_bar=False)  # SAMM default: detect faces
    assert "no face found" in str(exc.value) and "006_1_3" in str(exc.value) and "1 of 3" in str(exc.value)
    # the procedural faces of the other clips are found by the Haar cascade
    assert {r["filename_o"] for r in read_labels(out)} == {"006_1_2", "007_3_1"}


def test_missing_root_and_empty_clip_folder(tmp_path):
    with pytest.raises(DataError, match="not found"):
        extract("casme2", tmp_path / "absent", tmp_path / "out")
    root = fake_casme2(tmp_path / "CASME2")
    clip = root / "Cropped" / "sub01" / "EP19_05f"
    for p in clip.iterdir():
        p.unlink()
    with pytest.raises(DataError) as exc:
        extract("casme2", root, tmp_path / "out", progress_bar=False)
    assert str(clip) in str(exc.value)


def test_rerun_with_other_settings_is_refused(tmp_path):
    from am3f.errors import AM3FError

    root, out = fake_casme2(tmp_path / "CASME2"), tmp_path / "out"
    extract("casme2", root, out, progress_bar=False)
    with pytest.raises(AM3FError, match="other settings"):
        extract("casme2", root, out, method="dis", progress_bar=False)
    assert json.loads((out / "extract-config.json").read_text())["casme2"]["method"] == "tvl1"


def test_cli_extract(tmp_path, capsys):
    from am3f.app.cli import main

    root = fake_casme2(tmp_path / "CASME2", suffix=".xlsx")
    assert main(["extract", "--dataset", "casme2", "--root", str(root), "--out", str(tmp_path / "o"),
                 "--workers", "1"]) == 0
    assert "4 clips" in capsys.readouterr().out
    code = main(["extract", "--dataset", "casme2", "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert code == 2 and "nope" in capsys.readouterr().err
