"""Host-device synchronisations per training step of segexp's loop, counted by the profiler.

    python benchmarks/host_syncs.py --model smp_unet --size 512 --batch-size 16 --steps 20

A synchronisation stalls the CPU until the GPU has caught up, so the launch queue runs dry.
segexp's loop should need one every `trainer.log_every_n_steps` steps (the logged loss) and no
other. Counted: the CUDA runtime calls that block the host (cudaStreamSynchronize,
cudaDeviceSynchronize, cudaEventSynchronize, synchronous cudaMemcpy) in a torch.profiler trace
of ``--steps`` steps after a warm-up, and, as a second opinion, the warnings of
`torch.cuda.set_sync_debug_mode("warn")` (which names the Python line of each). On a CPU there
is nothing to count: the result says so.
"""

import argparse
import json
import sys
import warnings
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput

from segexp.training.epoch import train_one_epoch
from segexp.training.experiment import build_experiment
from segexp.training.loggers import NullWriter

BLOCKING = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy")


def count_syncs(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for flag, default in (("--model", "unet"), ("--aug", "none"), ("--device", "auto")):
        parser.add_argument(flag, default=default)
    for flag, default in (("--size", 128), ("--batch-size", 16), ("--workers", 0)):
        parser.add_argument(flag, type=int, default=default)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    args.samples = 0
    cfg = throughput.compose_config(args)
    exp = build_experiment(cfg)
    cuda = exp.dev.device.type == "cuda"

    def run(steps: int) -> None:
        batches = throughput.Timed(exp.splits.train, steps)
        train_one_epoch(exp, batches, NullWriter(), epoch=1, global_step=0, num_batches=steps)

    run(args.warmup)
    throughput.synchronize(exp.dev.device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        run(args.steps)
        throughput.synchronize(exp.dev.device)
    counts = {e.key: e.count for e in prof.key_averages() if e.key in BLOCKING}
    result = {
        "model": args.model,
        "device": str(exp.dev.device),
        "steps": args.steps,
        "log_every_n_steps": exp.trainer.log_every_n_steps,
        "blocking_calls": counts,
        "syncs_per_step": sum(counts.values()) / args.steps if cuda else None,
    }
    if cuda:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                run(args.steps)
                torch.cuda.synchronize()
            finally:
                torch.cuda.set_sync_debug_mode(0)
        lines = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]
        result["sync_debug_warnings_per_step"] = len(lines) / args.steps
        result["sync_debug_first"] = sorted(set(lines))[:5]
    else:
        result["note"] = "CPU: the host is the device; there are no synchronisations to count"
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    count_syncs()
