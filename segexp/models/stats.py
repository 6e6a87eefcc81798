"""Model size and cost: parameter counts and GFLOPs of one forward pass at the training size."""

import logging
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

log = logging.getLogger(__name__)


def count_flops(model: nn.Module, in_channels: int, size: tuple[int, int], device) -> float | None:
    """FLOPs of one image (multiply and add counted separately), or None where unsupported."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, in_channels, *size, device=device))
        return float(counter.get_total_flops())
    except Exception as err:  # a counter failure must never stop a run
        log.warning("GFLOPs not computed: %s", err)
        return None
    finally:
        model.train(was_training)


def model_stats(
    model: nn.Module, in_channels: int, size: tuple[int, int], device
) -> dict[str, Any]:
    flops = count_flops(model, in_channels, size, device)
    return {
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "gflops": None if flops is None else float(f"{flops / 1e9:.4g}"),
        "gflops_input_size": None if size is None else list(size),
    }
