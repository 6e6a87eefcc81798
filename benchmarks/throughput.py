"""Training throughput: segexp's loop against the plain loop the course teaches, side by side.

    python benchmarks/throughput.py                                  # unet, 128x128, batch 16
    python benchmarks/throughput.py --model smp_unet --size 512 --batch-size 16 --aug strong \
        --workers 8 --steps 50
    python benchmarks/throughput.py --set trainer.channels_last=false    # ablate one switch

Both loops train the same model (same initial weights), on the same data (the synthetic
scenes through the same albumentations pipeline), with the same loss, optimizer and batch size,
in one process, each after its own warm-up. They differ only in what the framework decides:

(a) segexp: `segexp.training.epoch.train_one_epoch` as a user configures it: uint8 batches
    normalised on the device (in the model), autocast (bf16 on CUDA), channels-last, fused
    optimizer, loss read every `trainer.log_every_n_steps` steps, DataLoader workers / pinned
    memory / persistent workers.
(b) reference: the course's loop: `ToTensor` + `Normalize` on the CPU inside the Dataset, fp32,
    `loss.item()` every step, `DataLoader(dataset, batch_size, shuffle=True)` defaults.

Prints a table and merges the result into benchmarks/results/<device>.json.
"""

import argparse
import datetime
import json
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
from segexp.runtime.device import make_device, seed_everything
from segexp.training.epoch import train_one_epoch
from segexp.training.experiment import build_experiment
from segexp.training.loggers import NullWriter
from segexp.training.optim import build_optimizer

RESULTS = Path(__file__).parent / "results"


class Timed:
    """Wraps a batch iterable and adds up the time spent waiting for the next batch."""

    def __init__(self, batches) -> None:
        self.batches, self.wait = batches, 0.0

    def __iter__(self):
        iterator = iter(self.batches)
        while True:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            self.wait += time.perf_counter() - start
            yield batch


class CourseDataset(Dataset):
    """The reference's dataset: same samples and augmentation, then float conversion and
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


def compose_config(args: argparse.Namespace) -> object:
    size = f"[{args.size},{args.size}]"
    samples = args.batch_size * (args.warmup + args.steps)
    overrides = [
        "name=benchmark",
        f"model={args.model}",
        f"aug={args.aug}",
        f"dataset.image_size={size}",
        f"dataset.batch_size={args.batch_size}",
        f"dataset.num_workers={args.workers}",
        f"dataset.train.num_samples={samples}",
        "trainer.epochs=1",  # one epoch of warm-up + timed steps: the schedule's length
        f"trainer.device={args.device}",
        *args.set,
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def prefill(dataset) -> None:
    """Generate every synthetic scene before timing: scene generation is not part of a loop."""
    for index in range(len(dataset)):
        dataset.load(index)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak allocated since the last reset. CPU: the process's peak resident set so far."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
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


def measure(step_fn, batches, steps: int, warmup: int, device: torch.device, batch_size: int):
    """Run ``warmup`` steps, then time ``steps`` steps; returns the measured figures."""
    iterator = iter(batches)
    step_fn([next(iterator) for _ in range(warmup)], warmup)
    timed = Timed(_take(iterator, steps))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    start = time.perf_counter()
    step_fn(timed, steps)
    synchronize(device)
    seconds = time.perf_counter() - start
    return {
        "images_per_s": steps * batch_size / seconds,
        "step_ms": 1000 * seconds / steps,
        "data_wait_fraction": timed.wait / seconds,
        "peak_memory_mb": peak_memory_mb(device),
    }


def _take(iterator, n: int):
    for _ in range(n):
        yield next(iterator)


def run_segexp(cfg, args) -> dict:
    seed_everything(int(cfg.seed), False, bool(cfg.trainer.cudnn_benchmark))
    exp = build_experiment(cfg)
    splits, dev, model = exp.splits, exp.dev, exp.model
    prefill(splits.train.dataset)

    def step(batches, num_batches: int) -> None:
        train_one_epoch(
            exp.train_model, exp.loss_fn, exp.optimizer, exp.scheduler, exp.scaler,
            batches, dev, NullWriter(), epoch=1, global_step=0,
            grad_clip_norm=cfg.trainer.grad_clip_norm,
            log_every_n_steps=int(cfg.trainer.log_every_n_steps),
            num_batches=num_batches,
        )  # fmt: skip

    result = measure(step, splits.train, args.steps, args.warmup, dev.device, args.batch_size)
    result["forward_gflops_per_image"] = forward_flops(model, cfg, dev.device) / 1e9
    result["precision"] = dev.precision
    return result


def run_reference(cfg, args) -> dict:
    seed_everything(int(cfg.seed), False)
    exp = build_experiment(cfg, training=False)  # the same model and loss, nothing else
    device, model, loss_fn = (
        exp.dev.device,
        exp.model.to(memory_format=torch.contiguous_format),
        exp.loss_fn,
    )
    source = build(cfg.dataset.train, transform=build(cfg.aug.train))
    prefill(source)
    dataset = CourseDataset(source, list(cfg.dataset.mean), list(cfg.dataset.std))
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True)
    optimizer = build_optimizer(cfg.optimizer, model, device, fused=False)
    model.train()

    def step(batches, num_batches: int) -> None:
        running = 0.0
        for images, masks in batches:
            images, masks = images.to(device), masks.to(device)
            loss = loss_fn(model(images), masks)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running += loss.item()

    result = measure(step, loader, args.steps, args.warmup, device, args.batch_size)
    result["precision"] = "fp32"
    return result


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu-{torch.get_num_threads()}threads-{platform.machine()}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="unet")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--aug", default="none")
    parser.add_argument("--workers", type=int, default=0, help="segexp's DataLoader workers")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per loop")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per loop")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=790.0,
        help="dense bf16 matmul rate of the GPU, for model FLOPs utilisation",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Hydra override for segexp's loop (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: results/)")
    args = parser.parse_args(argv)

    cfg = compose_config(args)
    reference = run_reference(cfg, args)
    ours = run_segexp(cfg, args)
    device = make_device(cfg.trainer).device
    flops = ours["forward_gflops_per_image"] * 1e9
    for result in (ours, reference):
        result["mfu"] = 3 * flops * result["images_per_s"] / (args.peak_tflops * 1e12)
    ratio = ours["images_per_s"] / reference["images_per_s"]

    key = f"{args.model} {args.size}x{args.size} b{args.batch_size} aug={args.aug} w{args.workers}"
    if args.set:
        key += " " + " ".join(args.set)
    print(f"\n{key} on {device_name(device)}")
    print(
        f"{'loop':<10} {'images/s':>9} {'step ms':>8} {'data wait':>9} {'peak MB':>8} "
        f"{'MFU':>6}  precision"
    )
    for name, result in (("segexp", ours), ("reference", reference)):
        print(
            f"{name:<10} {result['images_per_s']:9.1f} {result['step_ms']:8.1f} "
            f"{result['data_wait_fraction']:9.1%} {result['peak_memory_mb']:8.0f} "
            f"{result['mfu']:6.1%}  {result['precision']}"
        )
    print(
        f"ratio segexp / reference: {ratio:.2f}x   "
        f"(forward {ours['forward_gflops_per_image']:.2f} GFLOPs per image)"
    )

    entry = {
        "segexp": ours,
        "reference": reference,
        "ratio": ratio,
        "command": "python benchmarks/throughput.py " + " ".join(argv or sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device_name(device),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "albumentations": albumentations.__version__,
            "segmentation_models_pytorch": segmentation_models_pytorch.__version__,
        },
    }
    out = args.out or RESULTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', device_name(device))}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.exists() else {}
    results[key] = entry
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {out}")
    return entry


if __name__ == "__main__":
    main()
