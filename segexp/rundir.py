"""A finished run folder: its config and a trained model, ready for inference."""

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from segexp.checkpoint import load_checkpoint
from segexp.engine import Device
from segexp.errors import SegexpError
from segexp.models.build import build_model
from segexp.runtime import make_device


@dataclass
class LoadedRun:
    run_dir: Path
    checkpoint: Path
    cfg: DictConfig  # the run's resolved config, as stored in the checkpoint
    model: torch.nn.Module  # in eval mode, on dev.device
    dev: Device


def checkpoint_path(run_dir: Path, checkpoint: str) -> Path:
    """``best`` / ``last`` name a file in run_dir/checkpoints; anything else is a path."""
    if checkpoint in {"best", "last"}:
        return run_dir / "checkpoints" / f"{checkpoint}.pt"
    path = Path(checkpoint)
    return path if path.is_absolute() or path.exists() else run_dir / path


def load_run(run: str | Path, checkpoint: str = "best", device: str = "auto") -> LoadedRun:
    run_dir = Path(run)
    if not run_dir.is_dir():
        raise SegexpError(f"run={run}: no such folder; give a run folder under outputs/")
    path = checkpoint_path(run_dir, checkpoint)
    if not path.is_file():
        raise SegexpError(
            f"checkpoint {path} does not exist: did the run finish? "
            "Use checkpoint=last or checkpoint=<file.pt>"
        )
    state = load_checkpoint(path)
    if "config" not in state or "model" not in state:
        raise SegexpError(f"{path} is not a segexp checkpoint (no 'config' or 'model' entry)")
    cfg = OmegaConf.create(state["config"])
    # The trained weights come from the checkpoint: no pretrained file is read again.
    for key in ("weights", "encoder_weights"):
        if key in cfg.model:
            cfg.model[key] = None
    # The run's own precision and memory format, so that evaluating on the machine that trained
    # reproduces the run's numbers; only the device may change.
    cfg.trainer.device = device
    dev = make_device(cfg)
    model = build_model(cfg.model)
    model.load_state_dict(state["model"])
    model.to(dev.device).eval()
    if dev.channels_last:
        model.to(memory_format=torch.channels_last)
    return LoadedRun(run_dir, path, cfg, model, dev)
