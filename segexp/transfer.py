"""Transfer learning: a frozen-then-fine-tuned encoder and a lower encoder learning rate."""

import logging
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from segexp.config import build
from segexp.errors import SegexpError
from segexp.models.wrapper import SegmentationModel
from segexp.speed import make_optimizer

log = logging.getLogger(__name__)


def build_optimizer(
    node: DictConfig,
    model: SegmentationModel,
    device: torch.device | str = "cpu",
    fused: bool | str = "auto",
) -> torch.optim.Optimizer:
    """The configured optimizer; encoder parameters get ``lr * optimizer.encoder_lr_mult``.
    ``fused`` picks the fused kernel as in ``segexp.speed.make_optimizer``.

    Frozen parameters stay in the optimizer (their grads are None, so they do not move) so that
    unfreezing needs no new optimizer.
    """
    data = OmegaConf.to_container(node, resolve=True)
    mult = float(data.pop("encoder_lr_mult", 1.0))
    factory = build(OmegaConf.create(data))
    encoder = model.encoder
    if mult == 1.0 or encoder is None:
        if mult != 1.0:
            log.warning("optimizer.encoder_lr_mult=%s ignored: the model has no encoder", mult)
        return make_optimizer(factory, model.parameters(), device, fused)
    if mult < 0:
        raise SegexpError(f"optimizer.encoder_lr_mult={mult}: use a value >= 0 (1 = same lr)")
    encoder_ids = {id(p) for p in encoder.parameters()}
    rest = [p for p in model.parameters() if id(p) not in encoder_ids]
    groups: list[dict[str, Any]] = [
        {"params": list(encoder.parameters()), "lr": float(data["lr"]) * mult, "name": "encoder"},
        {"params": rest, "name": "decoder"},
    ]
    return make_optimizer(factory, groups, device, fused)


def freeze_schedule(model: SegmentationModel, epoch: int, freeze_epochs: int, writer) -> None:
    """Call at the start of every epoch (1-based): frozen for epochs 1..N, trainable after."""
    if freeze_epochs <= 0:
        return
    frozen = epoch <= freeze_epochs
    if frozen != model.encoder_frozen or epoch == 1:
        model.set_encoder_frozen(frozen)
        if frozen:
            log.info(
                "encoder frozen (weights and BatchNorm statistics) for epochs 1-%d", freeze_epochs
            )
        else:
            log.info("epoch %d: encoder unfrozen, fine-tuning the whole model", epoch)
            writer.add_text("schedule", f"encoder unfrozen at epoch {epoch}", epoch)
    writer.add_scalar("train/encoder_frozen", float(frozen), epoch)
