"""Training throughput: segexp's loop against plain loops and Lightning, timed so it cannot flatter.

    python benchmarks/throughput.py                                  # unet, 128x128, batch 16
    python benchmarks/throughput.py --model smp_unet --size 512 --batch-size 16 --aug strong \
        --workers 12 --steps 50
    python benchmarks/throughput.py --set trainer.channels_last=false --loops segexp   # ablation

Every loop trains the same model (same initial weights), on the same data (the synthetic scenes
through the same albumentations pipeline), with the same loss, optimizer and batch size, in one
process, one after the other, each after its own warm-up:

- segexp: `segexp.training.epoch.train_one_epoch` on `build_experiment(cfg)`: uint8 batches
  normalised on the device (in the model), autocast (bf16 on CUDA and on CPUs with native bf16),
  channels-last, fused optimizer on CUDA, loss read every `trainer.log_every_n_steps` steps,
  DataLoader workers with pinned memory and persistent workers.
- plain: the course's loop: `ToTensor` + `Normalize` on the CPU inside the Dataset, fp32,
  `loss.item()` every step, `DataLoader(dataset, batch_size, shuffle=True)` (no workers).
- plain+workers: the same loop with segexp's DataLoader workers, pinned memory, persistent
  workers and non-blocking copies: the difference to `plain` is what workers give, the
  difference to `segexp` is what the framework gives.
- lightning: a LightningModule around the same network, the plain+workers data, segexp's
  precision and optimizer (optional: `pip install segexp[bench]`; skipped, with a message,
  when lightning is not installed).

Fairness rules (docs/performance.md):
- Cold loader: each timed pass starts a fresh loader iterator inside the timed interval, so no
  batch prepared during the warm-up is counted; every loop runs at least
  20 x workers x prefetch_factor steps, so that the batches still in flight when the clock
  stops (work done but not counted) are under 5% of the timed ones (`prefetch_fraction`).
- Peak memory is reset before each loop (CUDA allocator peak; on Linux CPUs the resident-set
  high-water mark via /proc/self/clear_refs).
- MFU = 3 x forward FLOPs per image x images/s / peak, against two labelled peaks: the device's
  datasheet dense rate (H100 SXM: 989 TFLOP/s bf16) and a matmul peak measured here.

Prints a table and merges the result into benchmarks/results/<device>.json.
"""

import argparse
import contextlib
import datetime
import importlib.metadata
import itertools
import json
import math
import os
import platform
import re
import resource
import sys
import time
from pathlib import Path

import albumentations
import segmentation_models_pytorch
import torch
import torchvision
from hydra import compose, initialize_config_dir
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode
from torchvision.transforms import functional as TF

from segexp.config.build import build
from segexp.config.paths import CONFIG_DIR
from segexp.config.trainer import trainer_settings
from segexp.runtime.device import make_device, seed_everything
from segexp.runtime.threads import available_cores
from segexp.training.epoch import train_one_epoch
from segexp.training.experiment import build_experiment
from segexp.training.loggers import NullWriter
from segexp.training.optim import build_optimizer

RESULTS = Path(__file__).parent / "results"
LOOPS = ("segexp", "plain", "plain+workers", "lightning")
PREFETCH_FACTOR = 2  # torch's DataLoader default, which segexp keeps
# Datasheet dense (no sparsity) bf16 tensor-core rates, TFLOP/s, matched on the device name.
SPEC_TFLOPS = [
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
]


class Timed:
    """Batches from fresh iterators of ``loader`` (epoch after epoch), ``steps`` in all, adding
    up the time spent waiting for each next batch."""

    def __init__(self, loader, steps: int) -> None:
        self.loader, self.steps, self.wait = loader, steps, 0.0

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        epochs = (iter(self.loader) for _ in itertools.count())
        iterator = itertools.islice(itertools.chain.from_iterable(epochs), self.steps)
        while True:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            self.wait += time.perf_counter() - start
            yield batch


class CourseDataset(Dataset):
    """The plain loops' dataset: same samples and augmentation, then float conversion and
    normalisation on the CPU, one image at a time."""

    def __init__(self, source: Dataset, mean: list[float], std: list[float]) -> None:
        self.source = source
        self.mean = [m / 255 for m in mean]
        self.std = [s / 255 for s in std]

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        image, mask = self.source.load(index)
        out = self.source.transform(image=image, mask=mask)
        image = TF.normalize(TF.to_tensor(out["image"]), self.mean, self.std)
        return image, torch.as_tensor(out["mask"], dtype=torch.long)


def loop_steps(args: argparse.Namespace, workers: int) -> int:
    """Timed steps: at least --steps, and enough that the prefetched batches are < 5%."""
    return max(args.steps, 20 * workers * PREFETCH_FACTOR)


def compose_config(args: argparse.Namespace) -> object:
    size = f"[{args.size},{args.size}]"
    longest = args.warmup + loop_steps(args, args.workers)
    samples = args.samples or min(args.batch_size * longest, max(1024, 4 * args.batch_size))
    epochs = math.ceil(longest / (samples // args.batch_size)) + 1  # the schedule's length
    overrides = [
        "name=benchmark",
        f"model={args.model}",
        f"aug={args.aug}",
        f"dataset.image_size={size}",
        f"dataset.batch_size={args.batch_size}",
        f"dataset.num_workers={args.workers}",
        f"dataset.train.num_samples={samples}",
        f"trainer.epochs={epochs}",
        f"trainer.device={args.device}",
        f"trainer.num_threads={torch.get_num_threads()}",  # every loop with the same threads
        *args.set,
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def prefill(dataset) -> None:
    """Generate every synthetic scene before timing (scene generation is not part of a loop;
    file datasets decode PNGs in the loader instead, see docs/performance.md)."""
    dataset.prefill(processes=min(available_cores(), 32))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    elif Path("/proc/self/clear_refs").exists():
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak allocated since the reset. CPU: the resident-set high-water mark since the
    reset (Linux), else the process's peak so far."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    status = Path("/proc/self/status")
    if status.exists():
        match = re.search(r"VmHWM:\s+(\d+) kB", status.read_text())
        if match:
            return int(match.group(1)) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def forward_flops(model: torch.nn.Module, cfg, device: torch.device) -> float:
    """FLOPs of one forward pass for one image at the training size."""
    height, width = cfg.dataset.image_size
    x = torch.zeros(1, int(cfg.dataset.in_channels), height, width, device=device)
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    model.train(was_training)
    return float(counter.get_total_flops())


def measured_matmul_tflops(device: torch.device, dtype: torch.dtype) -> float:
    """Dense matmul rate reached here (square matrices, the best of a few timed repeats)."""
    n, repeats = (8192, 20) if device.type == "cuda" else (512, 3)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = math.inf
    for _ in range(3):
        a @ b
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        synchronize(device)
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2 * n**3 / best / 1e12


def spec_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in SPEC_TFLOPS if key in name), None)


def measure(step_fn, loader, steps: int, warmup: int, device: torch.device, batch_size: int):
    """``warmup`` untimed steps, then ``steps`` timed ones from a cold loader iterator."""
    reset_peak_memory(device)
    step_fn(Timed(loader, warmup), warmup)
    synchronize(device)
    timed = Timed(loader, steps)
    start = time.perf_counter()
    step_fn(timed, steps)
    synchronize(device)
    seconds = time.perf_counter() - start
    return {
        "images_per_s": steps * batch_size / seconds,
        "step_ms": 1000 * seconds / steps,
        "steps": steps,
        "data_wait_fraction": timed.wait / seconds,
        "peak_memory_mb": peak_memory_mb(device),
    }


def run_segexp(cfg, args) -> dict:
    # As fit() does it. build_experiment also keeps freed memory in the process (allocator.py),
    # which is process-wide: this loop must stay the last one, the plain rows run without it.
    exp = build_experiment(cfg)
    prefill(exp.splits.train.dataset)
    steps = loop_steps(args, int(cfg.dataset.num_workers))

    def step(batches, num_batches: int) -> None:
        train_one_epoch(exp, batches, NullWriter(), epoch=1, global_step=0, num_batches=num_batches)

    result = measure(step, exp.splits.train, steps, args.warmup, exp.dev.device, args.batch_size)
    result["forward_gflops_per_image"] = forward_flops(exp.model, cfg, exp.dev.device) / 1e9
    result["precision"] = exp.dev.precision
    result["workers"] = int(cfg.dataset.num_workers)
    return result


def plain_parts(cfg, args, workers: int):
    """The plain loops' model (contiguous, fp32 weights), loss and DataLoader."""
    seed_everything(int(cfg.seed), False)
    exp = build_experiment(cfg, training=False)  # the same model and loss, nothing else
    model = exp.model.to(memory_format=torch.contiguous_format).train()
    source = build(cfg.dataset.train, transform=build(cfg.aug.train))
    prefill(source)
    dataset = CourseDataset(source, list(cfg.dataset.mean), list(cfg.dataset.std))
    cuda = exp.dev.device.type == "cuda"
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=cuda and workers > 0,
        persistent_workers=workers > 0,
    )
    return exp, model, loader


def run_plain(cfg, args, workers: int) -> dict:
    exp, model, loader = plain_parts(cfg, args, workers)
    device, loss_fn = exp.dev.device, exp.loss_fn
    optimizer = build_optimizer(cfg.optimizer, model, fused=False)
    non_blocking = workers > 0

    def step(batches, num_batches: int) -> None:
        running = 0.0
        for images, masks in batches:
            images = images.to(device, non_blocking=non_blocking)
            masks = masks.to(device, non_blocking=non_blocking)
            loss = loss_fn(model(images), masks)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running += loss.item()

    steps = loop_steps(args, workers)
    result = measure(step, loader, steps, args.warmup, device, args.batch_size)
    result["precision"] = "fp32"
    result["workers"] = workers
    return result


def run_lightning(cfg, args, precision: str) -> dict:
    try:
        import lightning as L
    except ImportError:
        return {"skipped": "lightning is not installed (pip install 'segexp[bench]')"}
    workers = int(cfg.dataset.num_workers)
    exp, model, loader = plain_parts(cfg, args, workers)
    device, loss_fn = exp.dev.device, exp.loss_fn
    lightning_precision = {"bf16": "bf16-mixed", "float16": "16-mixed", "bfloat16": "bf16-mixed"}

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model, self.loss_fn = model, loss_fn

        def training_step(self, batch, batch_idx):
            images, masks = batch
            return self.loss_fn(self.model(images), masks)

        def configure_optimizers(self):
            fused = trainer_settings(cfg.trainer).fused_optimizer
            return build_optimizer(cfg.optimizer, self.model, fused)

    module = Module()
    clock: dict[str, float] = {}

    class Clock(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            clock.setdefault("start", time.perf_counter())

        def on_train_end(self, trainer, pl_module) -> None:
            synchronize(device)
            clock["end"] = time.perf_counter()

    def fit(steps: int, timed: Timed, callbacks: list) -> None:
        trainer = L.Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=1,
            precision=lightning_precision.get(precision, "32-true"),
            max_steps=steps,
            max_epochs=-1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=callbacks,
        )
        trainer.fit(module, train_dataloaders=timed)

    reset_peak_memory(device)
    fit(args.warmup, Timed(loader, args.warmup), [])
    steps = loop_steps(args, workers)
    timed = Timed(loader, steps)
    fit(steps, timed, [Clock()])
    seconds = clock["end"] - clock["start"]
    return {
        "images_per_s": steps * args.batch_size / seconds,
        "step_ms": 1000 * seconds / steps,
        "steps": steps,
        "data_wait_fraction": timed.wait / seconds,
        "peak_memory_mb": peak_memory_mb(device),
        "precision": lightning_precision.get(precision, "32-true"),
        "workers": workers,
        "lightning": L.__version__,
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu-{torch.get_num_threads()}threads-{platform.machine()}"


def versions() -> dict:
    found = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "albumentations": albumentations.__version__,
        "segmentation_models_pytorch": segmentation_models_pytorch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
    }
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):  # not imported: seconds
        found["lightning"] = importlib.metadata.version("lightning")
    return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="unet")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--aug", default="none")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (all loops)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per loop (at least)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per loop")
    parser.add_argument("--samples", type=int, default=0, help="scenes (default: up to 1024)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--loops", default=",".join(LOOPS), help=f"comma-separated subset of {', '.join(LOOPS)}"
    )
    parser.add_argument(
        "--spec-tflops",
        type=float,
        default=None,
        help="datasheet dense peak for MFU (default: looked up from the CUDA device name)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Hydra override for every loop's config (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: results/)")
    args = parser.parse_args(argv)
    args.loops = [name.strip() for name in args.loops.split(",") if name.strip()]
    unknown = set(args.loops) - set(LOOPS)
    if unknown or not args.loops:
        parser.error(f"--loops: unknown {sorted(unknown)}; choose from {', '.join(LOOPS)}")
    return args


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    cfg = compose_config(args)
    dev = make_device(trainer_settings(cfg.trainer))
    results: dict[str, dict] = {}
    for name in (n for n in LOOPS if n in args.loops):  # segexp's row last: never the warmest
        if name == "plain":
            results[name] = run_plain(cfg, args, 0)
        elif name == "plain+workers":
            results[name] = run_plain(cfg, args, args.workers)
        elif name == "lightning":
            results[name] = run_lightning(cfg, args, dev.precision)
        if name == "segexp":
            results[name] = run_segexp(cfg, args)
    gflops = results.get("segexp", {}).get("forward_gflops_per_image")
    if gflops is None:
        gflops = forward_flops(build_experiment(cfg, training=False).model, cfg, dev.device) / 1e9
    peak_dtype = dev.amp_dtype or torch.float32
    peaks = {
        "spec_tflops": args.spec_tflops or spec_tflops(dev.device),
        "spec_dtype": "bf16 dense (datasheet)",
        "measured_matmul_tflops": measured_matmul_tflops(dev.device, peak_dtype),
        "measured_dtype": str(peak_dtype).replace("torch.", ""),
    }
    for result in results.values():
        if "images_per_s" not in result:
            continue
        rate = 3 * gflops * 1e9 * result["images_per_s"] / 1e12
        result["model_tflops"] = rate
        result["mfu_spec"] = rate / peaks["spec_tflops"] if peaks["spec_tflops"] else None
        result["mfu_measured"] = rate / peaks["measured_matmul_tflops"]
        result["prefetch_fraction"] = result["workers"] * PREFETCH_FACTOR / result["steps"]
    ours = results.get("segexp", {}).get("images_per_s")
    ratios = {
        f"segexp/{name}": ours / result["images_per_s"]
        for name, result in results.items()
        if ours and name != "segexp" and "images_per_s" in result
    }

    key = f"{args.model} {args.size}x{args.size} b{args.batch_size} aug={args.aug} w{args.workers}"
    if args.set:
        key += " " + " ".join(args.set)
    print_table(key, dev.device, results, ratios, peaks, gflops)
    entry = {
        "loops": results,
        "ratios": ratios,
        "peaks": peaks,
        "forward_gflops_per_image": gflops,
        "command": "python benchmarks/throughput.py " + " ".join(argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device_name(dev.device),
        "cpu_threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "versions": versions(),
    }
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", device_name(dev.device))
    out = args.out or RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    saved = json.loads(out.read_text()) if out.exists() else {}
    saved[key] = entry
    out.write_text(json.dumps(saved, indent=2) + "\n")
    print(f"written to {out}")
    return entry


def print_table(key, device, results, ratios, peaks, gflops) -> None:
    spec = peaks["spec_tflops"]
    print(f"\n{key} on {device_name(device)} (forward {gflops:.2f} GFLOPs per image)")
    print(
        f"{'loop':<14} {'images/s':>9} {'step ms':>8} {'data wait':>9} {'peak MB':>8} "
        f"{'MFU spec':>8} {'MFU meas':>8} {'prefetch':>8}  precision"
    )
    for name, r in results.items():
        if "skipped" in r:
            print(f"{name:<14} skipped: {r['skipped']}")
            continue
        mfu_spec = f"{r['mfu_spec']:8.1%}" if r["mfu_spec"] is not None else f"{'n/a':>8}"
        print(
            f"{name:<14} {r['images_per_s']:9.1f} {r['step_ms']:8.1f} "
            f"{r['data_wait_fraction']:9.1%} {r['peak_memory_mb']:8.0f} {mfu_spec} "
            f"{r['mfu_measured']:8.1%} {r['prefetch_fraction']:8.1%}  {r['precision']}"
        )
        if r["prefetch_fraction"] > 0.05:
            print(f"  warning: {name}: prefetched batches are over 5% of the timed steps")
    print(
        "MFU spec: against "
        + (f"{spec:.0f} TFLOP/s {peaks['spec_dtype']}" if spec else "no datasheet peak (CPU)")
        + f"; MFU meas: against {peaks['measured_matmul_tflops']:.2f} TFLOP/s, a "
        f"{peaks['measured_dtype']} matmul measured here"
    )
    print("  ".join(f"{name}: {ratio:.2f}x" for name, ratio in ratios.items()))


if __name__ == "__main__":
    main()
