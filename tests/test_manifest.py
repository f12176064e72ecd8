"""Is my data the same? The shipped manifest, `am3f data verify`, the data fingerprint."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from am3f.app.cli import main
from am3f.data.dataset import data_fingerprint, load_flow_dataset
from am3f.data.manifest import build_manifest, flow_correlation, shipped_manifest, verify

from conftest import write_fake_composite


@pytest.mark.real_data
def test_the_real_set_is_the_one_the_manifest_describes(composite_dir, capsys):
    manifest, record = shipped_manifest()
    assert build_manifest(composite_dir).equals(manifest)
    assert data_fingerprint(load_flow_dataset(composite_dir)) == record["fingerprint"]
    assert main(["data", "verify", str(composite_dir)]) == 0
    assert capsys.readouterr().out.strip() == "442 of 442 samples identical to the manifest"


@pytest.mark.real_data
def test_a_damaged_copy_names_each_damaged_sample(composite_dir, tmp_path, capsys):
    copy = tmp_path / "copy"  # a temporary copy outside the repository, removed with tmp_path
    shutil.copytree(composite_dir, copy)
    flows = copy / "flows"
    manifest, _ = shipped_manifest()
    changed, relabelled, deleted = manifest["sample_id"].iloc[[0, 1, 2]]
    png = next(flows.glob(f"{changed} .png"))
    img = np.asarray(Image.open(png)).copy()
    img[0, 0] = 255 - img[0, 0]
    Image.fromarray(img).save(png)
    next(flows.glob(f"{deleted} .png")).unlink()
    csv_path = copy / "combined_3_class2_for_optical_flow.csv"
    rows = list(csv.DictReader(csv_path.open()))
    for r in rows:
        if f"{r['sub']}_{r['filename_o']}" == relabelled:
            r["label"] = str((int(r["label"]) + 1) % 3)
    extra = dict(rows[0], sub="999", filename_o="new_clip")
    rows.append(extra)
    shutil.copy(next(flows.glob("*.png")), flows / "999_new_clip .png")
    with csv_path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    diffs, identical = verify(copy)
    kinds = {(d["sample_id"], d["kind"]) for d in diffs}
    assert {(changed, "pixels differ"), (relabelled, "label differs"), (deleted, "missing"),
            ("999_new_clip", "extra")} <= kinds
    assert identical == 442 - 3
    assert main(["data", "verify", str(copy)]) == 1
    out = capsys.readouterr().out
    assert "439 of 442 samples identical" in out and f"{changed}: pixels differ" in out


def test_verify_on_fake_folders_labels_correlation_and_bad_input(tmp_path, capsys):
    a = write_fake_composite(tmp_path / "a", {"s1": [0, 1, 2], "s2": [2, 1, 0]})
    b = write_fake_composite(tmp_path / "b", {"s1": [0, 1, 2], "s2": [2, 1, 0]}, seed=1)  # other pixels, same labels
    manifest = build_manifest(a)
    manifest.to_csv(tmp_path / "m.csv", index=False)
    diffs, identical = verify(b, manifest)
    assert identical == 0 and {d["kind"] for d in diffs} == {"pixels differ"}  # labels match, pixels do not
    assert verify(a, manifest) == ([], 6)
    corr = flow_correlation(a, a)
    assert len(corr) == 6 and np.allclose(corr[["u", "v", "strain"]].to_numpy(), 1.0)
    assert main(["data", "verify", str(b), "--manifest", str(tmp_path / "m.csv"), "--compare-with", str(a)]) == 1
    assert "Pearson r per channel" in capsys.readouterr().out
    assert main(["data", "verify", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_the_fingerprint_follows_every_pixel_and_label_and_runs_record_it(tmp_path):
    from am3f.protocol.engine import QUIET, run_loso

    from conftest import EpochRunner

    data = load_flow_dataset(write_fake_composite(tmp_path / "d", {"s1": [0, 1, 2], "s2": [2, 1, 0]}))
    fp = data_fingerprint(data)
    assert fp == data_fingerprint(data.subset(np.arange(len(data))[::-1]))  # order does not matter
    x = data.x.copy()
    x[0, 0, 0, 0] = 1 - x[0, 0, 0, 0]
    assert data_fingerprint(type(data)(x, data.labels, data.subjects, data.datasets, data.sample_ids)) != fp
    labels = data.labels.copy()
    labels[0] = (labels[0] + 1) % 3
    assert data_fingerprint(type(data)(data.x, labels, data.subjects, data.datasets, data.sample_ids)) != fp
    run = run_loso(data, EpochRunner(), tmp_path / "run", seeds=[0], execution=QUIET)
    assert json.loads((run / "run.json").read_text())["data_fingerprint"] == fp
    assert "data_fingerprint" not in json.loads((run / "config.json").read_text())


def test_unusable_input_is_one_line_and_exit_2_and_row_deletions_and_dataset_changes_are_named(tmp_path, capsys):
    a = write_fake_composite(tmp_path / "a", {"s1": [0, 1, 2], "s2": [2, 1, 0]})
    manifest = tmp_path / "m.csv"
    build_manifest(a).to_csv(manifest, index=False)
    (tmp_path / "bad.csv").write_text("foo,bar\n1,2\n")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    csv_path = b / "combined_3_class2_for_optical_flow.csv"
    csv_path.write_text(csv_path.read_text().replace("casme2,s1,EP00_0,0", "casme2,s1,EP00_0,abc"))
    for argv, message in [([str(b), "--manifest", str(manifest)], "'abc' is not an integer class index"),
                          ([str(a), "--manifest", str(tmp_path / "none.csv")], "manifest not found"),
                          ([str(a), "--manifest", str(tmp_path / "bad.csv")], "not a manifest (missing column(s)"),
                          ([str(tmp_path)], "not a composite-layout folder")]:
        assert main(["data", "verify", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("am3f data: error:") and message in err and "\n" not in err
    d = tmp_path / "d"
    shutil.copytree(a, d)
    csv_path = d / "combined_3_class2_for_optical_flow.csv"
    lines = [line.replace("casme2,s2,EP00_2", "samm,s2,EP00_2") for line in csv_path.read_text().splitlines()
             if "s1,EP02_2" not in line]  # one row deleted (its PNG too), one sample's dataset changed
    csv_path.write_text("\n".join(lines) + "\n")
    (d / "flows" / "s1_EP02_2 .png").unlink()
    diffs, identical = verify(d, manifest)
    assert identical == 4
    assert {(x["sample_id"], x["kind"]) for x in diffs} == {("s1_EP02_2", "missing"), ("s2_EP00_2", "dataset differs")}
