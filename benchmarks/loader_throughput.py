"""What one DataLoader worker delivers at 512x512, per augmentation policy, and the workers
needed for a target rate (1600 images/s: an H100 training smp_unet ResNet-34 at batch 16).

    python benchmarks/loader_throughput.py --size 512 --samples 48

A worker's rate is 1 / (CPU seconds per sample) of exactly what a worker runs
(`dataset[i]`: the training transform and the uint8 tensors; for file data add the PNG
decode, measured separately). CPU time, not wall time, so that a busy machine does not
change the figure. Each policy is measured with OpenCV's default thread pool ("before") and
with cv2.setNumThreads(0) as segexp's workers now set it ("after"); `strong_device` is
`strong` with its photometric part moved to the device (aug.device), so its CPU side is
the geometry only. Results merge into benchmarks/results/loader_<machine>.json.
"""

import argparse
import io
import json
import math
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput

from segexp.config.build import build
from segexp.data.decode import read_image
from segexp.data.loaders import seed_transform

POLICIES = ("none", "light", "strong", "strong_device")


def cpu_seconds_per_sample(dataset, indices: list[int]) -> float:
    for index in indices[:4]:  # warm-up
        dataset[index]
    start = time.process_time()
    for index in indices:
        dataset[index]
    return (time.process_time() - start) / len(indices)


def png_decode_seconds(size: int, repeats: int = 10) -> float:
    rng = np.random.default_rng(0)
    scene = (rng.random((size, size, 3)) * 64 + np.linspace(0, 190, size)[:, None, None]).astype(
        np.uint8
    )
    path = Path(f"/tmp/segexp_loader_{size}.png")
    buffer = io.BytesIO()
    Image.fromarray(scene).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    read_image(path)
    start = time.process_time()
    for _ in range(repeats):
        read_image(path)
    return (time.process_time() - start) / repeats


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--target", type=float, default=1600.0, help="images/s to feed")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    decode = png_decode_seconds(args.size)
    results: dict = {"png_decode_ms": 1000 * decode}
    for policy in args.policies.split(","):
        ns = argparse.Namespace(
            model="unet", size=args.size, batch_size=8, aug=policy, workers=0, steps=1,
            warmup=0, samples=args.samples, device="cpu", set=[],
        )  # fmt: skip
        cfg = throughput.compose_config(ns)
        dataset = build(cfg.dataset.train, transform=build(cfg.aug.train))
        throughput.prefill(dataset)
        row = {"opencv_default_threads": cv2.getNumThreads()}
        for label, threads in (("before", cv2.getNumThreads()), ("after", 0)):
            cv2.setNumThreads(threads)
            seed_transform(dataset.transform, 0)  # the same draws in both measurements
            seconds = cpu_seconds_per_sample(dataset, list(range(args.samples)))
            per_worker = 1 / seconds
            with_decode = 1 / (seconds + decode)
            row[label] = {
                "cpu_ms_per_sample": 1000 * seconds,
                "images_per_s_per_worker": per_worker,
                "workers_for_target": math.ceil(args.target / per_worker),
                "images_per_s_per_worker_with_png_decode": with_decode,
                "workers_for_target_with_png_decode": math.ceil(args.target / with_decode),
            }
        results[policy] = row
        print(
            f"{policy:<14} before {row['before']['cpu_ms_per_sample']:6.2f} ms "
            f"({row['before']['images_per_s_per_worker']:6.1f}/s/worker, "
            f"{row['before']['workers_for_target']:3d} workers)   after "
            f"{row['after']['cpu_ms_per_sample']:6.2f} ms "
            f"({row['after']['images_per_s_per_worker']:6.1f}/s/worker, "
            f"{row['after']['workers_for_target']:3d} workers; "
            f"{row['after']['workers_for_target_with_png_decode']:3d} with PNG decode)",
            flush=True,
        )
    print(f"PNG decode {results['png_decode_ms']:.2f} ms per {args.size}x{args.size} image")
    key = f"{args.size}x{args.size} target {args.target:.0f}/s"
    out = args.out or throughput.RESULTS / f"loader_{platform.machine()}.json"
    saved = json.loads(out.read_text()) if out.exists() else {}
    saved[key] = {**results, "command": "python benchmarks/loader_throughput.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    ), "versions": throughput.versions()}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(saved, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
