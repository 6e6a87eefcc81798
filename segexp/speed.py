"""Speed switches that need more than a flag: fused optimizer kernels and torch.compile."""

import functools
import inspect
import logging
from collections.abc import Callable, Iterable

import torch
from torch import nn

log = logging.getLogger(__name__)


def _accepts_fused(factory: Callable) -> bool:
    target = factory.func if isinstance(factory, functools.partial) else factory
    return "fused" in inspect.signature(target).parameters


def make_optimizer(
    factory: Callable, params: Iterable, device: torch.device | str, fused: bool | str
) -> torch.optim.Optimizer:
    """Build the optimizer, with its fused (one kernel for all parameters) implementation when
    ``fused`` is true, or is "auto" and the device is CUDA, and the optimizer offers one."""
    use_fused = torch.device(device).type == "cuda" if fused == "auto" else bool(fused)
    if use_fused and _accepts_fused(factory):
        return factory(params=params, fused=True)
    if use_fused and fused != "auto":
        log.warning("trainer.fused_optimizer=true, but this optimizer has no fused version")
    return factory(params=params)


def maybe_compile(model: nn.Module, setting: bool | str) -> nn.Module:
    """The module to call in the loop: ``model`` itself, or ``torch.compile(model)`` when
    ``setting`` is true (default backend, inductor) or names a backend (e.g. "aot_eager").
    Checkpoints keep saving the uncompiled ``model``: same state-dict keys either way."""
    if setting is False or setting is None:
        return model
    return torch.compile(model) if setting is True else torch.compile(model, backend=setting)
