"""Gradient accumulation on CPU: peak memory and images/s at N=1 vs N=4, same effective batch.

    OMP_NUM_THREADS=1 python benchmarks/accumulation.py --out /tmp/accumulation --batch 32

Each setting is one `python -m segexp` training process (default U-Net, synthetic data at 128 x
128, one epoch); its peak resident memory comes from the operating system (wait4's ru_maxrss),
images/s from its summary.json (training steps only).
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ENV = dict(os.environ, OMP_NUM_THREADS="1")


def run(out: Path, effective_batch: int, accumulate: int, samples: int) -> dict:
    run_dir = out / f"n{accumulate}"
    args = [
        sys.executable, "-m", "segexp", "logger=none", "trainer.epochs=1",
        "dataset.image_size=[128,128]", f"dataset.train.num_samples={samples}",
        "dataset.val.num_samples=8", "dataset.test.num_samples=8", "trainer.print_config=false",
        f"dataset.batch_size={effective_batch // accumulate}",
        f"trainer.accumulate_grad_batches={accumulate}", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    process = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise SystemExit(f"N={accumulate} failed:\n{process.stderr.read().decode()[-2000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "accumulate_grad_batches": accumulate,
        "batch_size": effective_batch // accumulate,
        "effective_batch": effective_batch,
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "images_per_s": summary["images_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=32, help="effective batch")
    parser.add_argument("--samples", type=int, default=128)
    args = parser.parse_args()
    results = [run(args.out, args.batch, n, args.samples) for n in (1, 4)]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
