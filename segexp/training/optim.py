"""The optimizer (with an encoder parameter group) and torch.compile: speed switches that need
more than a flag."""

import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from segexp.config.build import build
from segexp.models.wrapper import SegmentationModel

log = logging.getLogger(__name__)


def _accepts_fused(factory: Callable) -> bool:
    target = factory.func if isinstance(factory, functools.partial) else factory
    return "fused" in inspect.signature(target).parameters


def make_optimizer(factory: Callable, params: Iterable, fused: bool | str) -> torch.optim.Optimizer:
    """Build the optimizer, with its fused (one kernel for all parameters) implementation when
    ``fused`` is true or "auto" and the optimizer has one for its parameters' device. "auto"
    falls back quietly where this torch has no such kernel (CPU kernels came with torch 2.4).
    One kernel instead of one per parameter tensor: docs/performance.md has the difference."""
    params = list(params)
    if fused and _accepts_fused(factory):  # "auto" or true
        try:
            return factory(params=params, fused=True)
        except RuntimeError as err:  # e.g. "`fused=True` requires all the params to be ..."
            if fused != "auto":
                log.warning("trainer.fused_optimizer=true, but: %s", err)
    elif fused is True:
        log.warning("trainer.fused_optimizer=true, but this optimizer has no fused version")
    return factory(params=params)


def build_optimizer(
    node: DictConfig,
    model: SegmentationModel,
    fused: bool | str = "auto",
) -> torch.optim.Optimizer:
    """The configured optimizer (a ``_partial_`` node); the encoder's parameters train at
    ``lr * model.encoder_lr_mult``.

    Frozen parameters stay in the optimizer (their grads are None, so they do not move) so that
    unfreezing needs no new optimizer.
    """
    factory = build(node)
    mult, encoder = model.encoder_lr_mult, model.encoder
    if mult == 1.0 or encoder is None:
        if mult != 1.0:
            log.warning("model.encoder_lr_mult=%s ignored: the model has no encoder", mult)
        return make_optimizer(factory, model.parameters(), fused)
    encoder_ids = {id(p) for p in encoder.parameters()}
    rest = [p for p in model.parameters() if id(p) not in encoder_ids]
    lr = float(factory.keywords["lr"])
    groups: list[dict[str, Any]] = [
        {"params": list(encoder.parameters()), "lr": lr * mult, "name": "encoder"},
        {"params": rest, "name": "decoder"},
    ]
    return make_optimizer(factory, groups, fused)


def maybe_compile(model: nn.Module, setting: bool | str) -> nn.Module:
    """The module to call in the loop: ``model`` itself, or ``torch.compile(model)`` when
    ``setting`` is true (default backend, inductor) or names a backend (e.g. "aot_eager").
    Checkpoints keep saving the uncompiled ``model``: same state-dict keys either way."""
    if setting is False or setting is None:
        return model
    return torch.compile(model) if setting is True else torch.compile(model, backend=setting)
