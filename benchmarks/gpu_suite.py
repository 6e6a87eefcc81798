"""Everything `bash benchmarks/gpu.sh` measures, in one process, within a time budget.

    python benchmarks/gpu_suite.py --out $OUT            # on one GPU: about 9 minutes
    python benchmarks/gpu_suite.py --out /tmp/x --tiny   # the same stages, tiny, on the CPU

Stages, most important first; a stage that would likely end after --budget-s (judged by the
longest stage so far) is recorded as skipped, so the whole stays within the 10 minutes:
1. throughput (benchmarks/throughput.py, every loop) of smp_unet ResNet-34 at 512x512, batch 16,
   aug none and strong;
2. host synchronisations per step of segexp's loop (benchmarks/host_syncs.py), and segexp's
   loop with aug=strong_device (photometric augmentation on the GPU);
3. each speed switch turned off in turn (segexp's loop only, smp_unet, aug none);
4. throughput of the custom unet, deeplabv3 and segformer, aug none, then aug strong.
Writes throughput.json, host_syncs.json and suite.json (what ran, how long) under --out.
"""

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import host_syncs
import throughput

from segexp.runtime.threads import available_cores

SMP_UNET = ["--model", "smp_unet", "--set", "model.net.encoder_name=resnet34"]
OTHERS = [["--model", "unet"], ["--model", "deeplabv3"], ["--model", "segformer"]]
SWITCHES_OFF = [
    "trainer.precision=fp32",
    "trainer.channels_last=false",
    "trainer.fused_optimizer=false",
    "trainer.cudnn_benchmark=false",
    "trainer.log_every_n_steps=1",
]
TINY_MODEL = ["--model", "unet", "--set", "model.net.base_channels=4", "--set", "model.net.depth=2"]


def stages(args: argparse.Namespace) -> list[tuple[str, object]]:
    if args.tiny:
        common = [
            "--device",
            "cpu",
            "--size",
            "32",
            "--batch-size",
            "4",
            "--workers",
            "0",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--samples",
            "8",
            "--loops",
            "segexp,plain",
        ]  # fmt: skip; Lightning's row: tests/benchmarks/test_throughput.py
        main_model, others, switches = TINY_MODEL, [], SWITCHES_OFF[1:2]
    else:
        workers = max(1, available_cores() - 2)  # two cores left for the training process
        common = ["--size", "512", "--batch-size", "16", "--workers", str(workers),
                  "--steps", "50", "--warmup", "10", "--samples", "512"]  # fmt: skip
        main_model, others, switches = SMP_UNET, OTHERS, SWITCHES_OFF
    tp_out = ["--out", str(args.out / "throughput.json")]
    todo: list[tuple[str, object]] = []
    for aug in ("none", "strong"):
        argv = [*main_model, *common, "--aug", aug, *tp_out]
        todo.append((f"throughput {' '.join(main_model)} aug={aug}", argv))
    syncs = [*main_model, *common, "--aug", "none", "--out", str(args.out / "host_syncs.json")]
    todo.append(("host syncs", ("syncs", _without(_without(syncs, "--samples"), "--loops"))))
    argv = [*_without(main_model + common, "--loops"), "--aug", "strong_device"]
    todo.append(("throughput aug=strong_device (segexp)", [*argv, "--loops", "segexp", *tp_out]))
    for switch in switches:
        argv = [*_without(main_model + common, "--loops"), "--aug", "none", "--loops", "segexp"]
        argv += ["--set", switch]
        todo.append((f"switch off: {switch}", [*argv, *tp_out]))
    for aug in ("none", "strong"):  # every model once before any model twice
        for model in others:
            todo.append(
                (f"throughput {model[1]} aug={aug}", [*model, *common, "--aug", aug, *tp_out])
            )
    return todo


def _without(argv: list[str], flag: str) -> list[str]:
    """argv without ``flag`` and its value."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == flag:
            skip = True
        else:
            out.append(item)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tiny", action="store_true", help="tiny CPU mode (the test suite's)")
    parser.add_argument("--budget-s", type=float, default=520.0, help="end by about this")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started, record = time.perf_counter(), []
    for name, work in stages(args):
        elapsed = time.perf_counter() - started
        longest = max((r.get("seconds", 0.0) for r in record), default=0.0)
        if elapsed + longest > args.budget_s:  # it would likely end past the budget
            record.append({"stage": name, "status": f"skipped: budget of {args.budget_s:.0f} s"})
            continue
        print(f"\n=== {name} (at {elapsed:.0f} s)", flush=True)
        begin = time.perf_counter()
        try:
            if isinstance(work, tuple):
                host_syncs.count_syncs(work[1])
            else:
                throughput.main(work)
            status = "done"
        except Exception as err:  # one failing stage (e.g. out of memory) must not end the rest
            traceback.print_exc()
            status = f"failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        record.append({"stage": name, "status": status, "seconds": time.perf_counter() - begin})
    summary = {"stages": record, "seconds": time.perf_counter() - started, "tiny": args.tiny}
    (args.out / "suite.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
