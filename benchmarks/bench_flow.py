"""Flow accuracy and speed: EPE per method on known motion, pairs/s, extraction throughput.

    python benchmarks/bench_flow.py            # ~1 minute on 2 cores
    python benchmarks/bench_flow.py --synth    # also time the default synthetic set's generation

Prints:
1. mean end-point error (px) of u, v on procedural-face pairs with AU-like motion of 0.5-2 px
   (128x128 frames, 8-px border ignored) and single-process pairs/s of compute_flow, per method;
2. end-to-end extraction throughput (read frames, crop, TV-L1, write PNG) of a fake CASME II-style
   tree of 128x128 frames with ``am3f.flow.extract.extract`` and --workers 1 and 2;
3. Pearson r of our 28x28 images of the two real GIF pairs vs the community reference images
   (when ../shared/data or $AM3F_SHARED is present).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from am3f.flow.optical_flow import METHODS, compare_to_reference, compute_flow, endpoint_error, flow_to_image  # noqa: E402
from am3f.flow.synth import _to_uint8, displacement, make_identity, make_pair, render_face  # noqa: E402

AUS = ("AU12", "AU4", "AU15", "AU1+2", "AU26")


def known_motion_pairs(n: int, size: int = 128, seed: int = 0, noise: float = 0.0):
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        ident = make_identity(rng)
        face = render_face(ident, size)
        amp = 0.5 + 1.5 * i / max(1, n - 1)
        dx, dy = displacement(ident, {AUS[i % len(AUS)]: amp}, size)
        apex, u, v = make_pair(face, dx, dy)
        if noise:
            face = face + rng.normal(0, noise, face.shape)
            apex = apex + rng.normal(0, noise, face.shape)
        pairs.append((_to_uint8(face), _to_uint8(apex), u, v, amp))
    return pairs


def bench_methods(n_pairs: int) -> None:
    pairs = known_motion_pairs(n_pairs)
    noisy = known_motion_pairs(n_pairs, seed=1, noise=0.01)
    print(f"1) known AU-like motion 0.5-2 px, {n_pairs} procedural-face pairs, 128x128, 8-bit")
    print(f"   {'method':10s} {'EPE clean':>10s} {'EPE noisy':>10s} {'max EPE':>8s} {'pairs/s':>8s}")
    for m in METHODS:
        t = time.perf_counter()
        e = [endpoint_error(compute_flow(a, b, m), u, v, border=8) for a, b, u, v, _ in pairs]
        dt = time.perf_counter() - t
        en = [endpoint_error(compute_flow(a, b, m), u, v, border=8) for a, b, u, v, _ in noisy]
        print(f"   {m:10s} {np.mean(e):10.3f} {np.mean(en):10.3f} {max(e + en):8.3f} {len(pairs) / dt:8.1f}")


def fake_casme_tree(root: Path, n_clips: int, size: int = 128) -> None:
    from PIL import Image

    pairs = known_motion_pairs(n_clips, size=size, seed=2, noise=0.01)
    with open(root / "CASME2-coding-bench.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
                    "Estimated Emotion"])
        for i, (a, b, *_) in enumerate(pairs):
            sub, clip = i % 8 + 1, f"EP{i:02d}_01"
            d = root / "Cropped" / f"sub{sub:02d}" / clip
            d.mkdir(parents=True)
            Image.fromarray(a).save(d / "reg_img1.jpg", quality=95)
            Image.fromarray(b).save(d / "reg_img2.jpg", quality=95)
            w.writerow([sub, clip, 1, 2, 2, "12", ("happiness", "disgust", "surprise")[i % 3]])


def bench_extract(n_clips: int, workers_list=(1, 2)) -> None:
    from am3f.errors import DataError
    from am3f.flow.extract import extract

    print(f"2) extraction throughput: {n_clips} onset/apex pairs of 128x128 jpg, TV-L1 defaults, "
          f"no face detector (CASME II default)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "CASME2"
        root.mkdir()
        fake_casme_tree(root, n_clips)
        for workers in workers_list:
            for detect in (False, True):
                out = Path(tmp) / f"out{workers}{detect}"
                t = time.perf_counter()
                note = ""
                try:
                    extract("casme2", root, out, workers=workers, detect=detect, progress_bar=False)
                except DataError as exc:  # the cascade misses a few procedural faces; still timed
                    note = f"  [{str(exc).split(' (')[0]}: no face found]"
                dt = time.perf_counter() - t
                tag = "with Haar face detection" if detect else "pre-cropped"
                print(f"   --workers {workers}, {tag:25s}: {n_clips / dt:6.1f} pairs/s ({dt:.1f} s){note}")


def bench_reference() -> None:
    from am3f.flow.frames import load_pair

    shared = Path(os.environ.get("AM3F_SHARED", REPO.parent / "shared" / "data"))
    if not (shared / "real-onset-apex").is_dir():
        print("3) real reference images: skipped (no shared data)")
        return
    print("3) Pearson r vs the community 28x28 reference images (u, v, strain)")
    for sid in ("006_006_1_2", "s03_s03_po_11"):
        ref = shared / "megc2019-composite" / "flows" / f"{sid} .png"
        for detect in (False, True):
            pair = load_pair(shared / "real-onset-apex" / f"{sid}.gif", detect=detect)
            for m in METHODS:
                r = compare_to_reference(flow_to_image(compute_flow(pair.onset, pair.apex, m)), ref)
                crop = "face box +10%" if detect else "canvas trim"
                print(f"   {sid:14s} {crop:14s} {m:9s} u {r['u']:.3f}  v {r['v']:.3f}  strain {r['strain']:.3f}")


def bench_synth() -> None:
    from am3f.data.dataset import load_flow_dataset
    from am3f.flow.synth import generate_synthetic

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        generate_synthetic(Path(tmp) / "s", n_subjects=16, seed=0, progress_bar=False)
        dt = time.perf_counter() - t
        print(f"4) default synthetic set generated in {dt:.1f} s: {load_flow_dataset(Path(tmp) / 's').describe()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=20, help="known-motion pairs per method")
    ap.add_argument("--clips", type=int, default=120, help="pairs in the extraction benchmark")
    ap.add_argument("--synth", action="store_true", help="also time the default synthetic set")
    args = ap.parse_args()
    os.environ.setdefault("AM3F_PROGRESS", "0")
    print(f"cores: {os.cpu_count()}")
    bench_methods(args.pairs)
    bench_extract(args.clips)
    bench_reference()
    if args.synth:
        bench_synth()


if __name__ == "__main__":
    main()
