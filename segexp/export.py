"""`python -m segexp.export run=<run folder> format=onnx|torchscript [output=<file>]`

The exported graph takes uint8 images (N, C, H, W) of any height and width, normalises them
with the run's mean and std, and returns logits (N, num_classes, H, W).
"""

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from segexp.cli import parse_args, run_tool
from segexp.errors import SegexpError

log = logging.getLogger("segexp")
DEFAULTS: dict[str, Any] = {
    "run": "???",
    "checkpoint": "best",
    "format": "onnx",  # onnx | torchscript
    "output": "",  # default: checkpoints/<checkpoint>.onnx or .torchscript.pt
    "size_divisor": 32,
    "opset": 18,
    "overwrite": False,
}
USAGE = __doc__ + "\noptions (defaults): " + " ".join(f"{k}={v}" for k, v in DEFAULTS.items())
SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}


class Deployable(nn.Module):
    """uint8 images in, logits out: normalisation and size padding live inside the graph.

    H and W are padded (with the mean, i.e. zeros after normalisation) up to a multiple of
    ``size_divisor`` and the logits cropped back. Exporters record one branch of shape-dependent
    Python code (the U-Net's skip alignment, smp's divisibility check), and padding makes every
    input size take the branch that was recorded.
    """

    def __init__(self, model: nn.Module, mean, std, size_divisor: int = 32) -> None:
        super().__init__()
        self.model = model
        self.size_divisor = int(size_divisor)
        self.register_buffer(
            "mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        )
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = (image.float() - self.mean) / self.std
        height, width = x.shape[-2], x.shape[-1]
        pad_h = (self.size_divisor - height % self.size_divisor) % self.size_divisor
        pad_w = (self.size_divisor - width % self.size_divisor) % self.size_divisor
        x = F.pad(x, (0, pad_w, 0, pad_h))
        return self.model(x)[..., :height, :width]


def export_onnx(module: nn.Module, example: torch.Tensor, path: Path, opset: int = 18) -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise SegexpError(
            "format=onnx needs the onnx package: pip install 'segexp[export]'"
        ) from None
    torch.onnx.export(
        module,
        (example,),
        str(path),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={
            "image": {0: "batch", 2: "height", 3: "width"},
            "logits": {0: "batch", 2: "height", 3: "width"},
        },
        opset_version=opset,
        dynamo=False,
    )


def export_torchscript(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(module, example)
    traced.save(str(path))


def export_run(opts: dict[str, Any]) -> Path:
    from segexp.rundir import load_run

    fmt = opts["format"]
    if fmt not in SUFFIX:
        raise SegexpError(f"format={fmt}: use onnx or torchscript")
    run = load_run(opts["run"], opts["checkpoint"], "cpu")
    path = Path(opts["output"]) if opts["output"] else run.checkpoint.with_suffix(SUFFIX[fmt])
    if path.exists() and not opts["overwrite"]:
        raise SegexpError(f"{path} already exists: choose another output= or pass overwrite=true")
    cfg = run.cfg
    module = Deployable(run.model.float(), cfg.dataset.mean, cfg.dataset.std, opts["size_divisor"])
    module.eval()
    height, width = (int(s) for s in cfg.dataset.image_size)
    example = torch.randint(
        0, 256, (1, int(cfg.dataset.in_channels), height, width), dtype=torch.uint8
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if fmt == "onnx":
            export_onnx(module, example, tmp, opts["opset"])
        else:
            export_torchscript(module, example, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info(
        "exported %s -> %s (input: uint8 N x %d x H x W; output: logits)",
        run.checkpoint,
        path,
        int(cfg.dataset.in_channels),
    )
    return path


def main(argv: list[str]) -> Path:
    return export_run(parse_args(argv, DEFAULTS, USAGE))


if __name__ == "__main__":
    run_tool(main)
