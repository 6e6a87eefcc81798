"""`segexp-export run=<run folder> format=onnx|torchscript [output=<file>]`

The exported graph is the run's model itself (models/wrapper.py): uint8 images (N, C, H, W) in,
normalised with the run's mean and std, padded to the model's size multiple and cropped back,
logits (N, classes, H, W) out. Before the file is kept, the exported graph is run at the
training size and at ``check_sizes`` and compared with the PyTorch model; a size where they
differ is refused by name and nothing is written (conf/export.yaml lists every option).
"""

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from segexp.config.cli import hydra_app, run_tool
from segexp.errors import SegexpError
from segexp.runtime import interrupt
from segexp.storage.files import check_output
from segexp.training.experiment import checkpoint_path, load_run

log = logging.getLogger("segexp")
SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
TOLERANCE = 1e-4  # largest absolute logit difference accepted between the graph and the model

Runner = Callable[[torch.Tensor], np.ndarray]


def export_onnx(module: nn.Module, example: torch.Tensor, path: Path, opset: int) -> Runner:
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError:
        raise SegexpError(
            "format=onnx needs the onnx and onnxruntime packages (onnxruntime checks the "
            "exported graph): pip install 'segexp[export]'"
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
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"image": x.numpy()})[0]


def export_torchscript(module: nn.Module, example: torch.Tensor, path: Path) -> Runner:
    with torch.no_grad():
        traced = torch.jit.trace(module, example)
    traced.save(str(path))
    loaded = torch.jit.load(str(path))
    return lambda x: loaded(x).detach().numpy()


@torch.no_grad()
def check_graph(run_graph: Runner, model: nn.Module, sizes: list[tuple[int, int]], channels: int):
    """Refuse (SegexpError naming the size) when the graph's logits differ from the model's."""
    generator = torch.Generator().manual_seed(0)
    for height, width in sizes:
        images = torch.randint(0, 256, (1, channels, height, width), generator=generator)
        images = images.to(torch.uint8)
        expected = model(images).numpy()
        try:
            got = run_graph(images)
        except Exception as err:  # the runtime's own errors: a size the graph cannot take
            raise SegexpError(
                f"the exported graph cannot run at {height}x{width} ({type(err).__name__}: "
                f"{str(err).strip().splitlines()[0][:200]}): export refused"
            ) from None
        worst = float(np.abs(got - expected).max()) if got.shape == expected.shape else np.inf
        if not worst < TOLERANCE:
            raise SegexpError(
                f"the exported graph differs from the model at {height}x{width} (max |logit "
                f"difference| {worst:.3g} >= {TOLERANCE}): export refused; this model cannot be "
                "exported for that size"
            )
        log.info("checked %dx%d: max |logit difference| %.2e", height, width, worst)


def export_run(cfg: DictConfig) -> Path:
    fmt = cfg.format
    if fmt not in SUFFIX:
        raise SegexpError(f"format={fmt}: use onnx or torchscript")
    checkpoint = checkpoint_path(Path(cfg.run), str(cfg.checkpoint))
    path = Path(cfg.output) if cfg.output else checkpoint.with_suffix(SUFFIX[fmt])
    check_output(path, "output", folder=False, overwrite=bool(cfg.overwrite))
    run = load_run(cfg.run, cfg.checkpoint, "cpu")
    model = run.model.float().eval()
    channels = int(run.cfg.dataset.in_channels)
    height, width = (int(s) for s in run.cfg.dataset.image_size)
    sizes = [(height, width), *((int(h), int(w)) for h, w in cfg.check_sizes)]
    too_small = [s for s in sizes if min(s) < model.size_multiple]
    if too_small:
        raise SegexpError(
            f"check_sizes {too_small} are smaller than the model's size multiple "
            f"({model.size_multiple}): the exported graph serves heights and widths of at "
            f"least {model.size_multiple}"
        )
    example = torch.randint(0, 256, (1, channels, height, width), dtype=torch.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if fmt == "onnx":
            run_graph = export_onnx(model, example, tmp, int(cfg.opset))
        else:
            run_graph = export_torchscript(model, example, tmp)
        check_graph(run_graph, model, sizes, channels)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info(
        "exported %s -> %s (input: uint8 N x %d x H x W with H, W >= %d; output: logits)",
        run.checkpoint, path, channels, model.size_multiple,
    )  # fmt: skip
    return path


@hydra_app("export")
def main(cfg: DictConfig) -> None:
    run_tool(interrupt.interruptible(export_run), cfg)


if __name__ == "__main__":
    main()
