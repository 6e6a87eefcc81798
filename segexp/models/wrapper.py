"""The one wrapper every model runs in: normalisation, any input size, plain logits, and what the
training loop needs to know about the network (its encoder, the encoder's schedule, the weight
of an auxiliary head).

- **Input stage**: uint8 images (N, C, H, W) are converted to float and normalised with the
  dataset's mean and std (0-255 scale) inside the model, so training, every inference tool and
  the exported graph normalise identically. A floating-point input is taken as already
  normalised (sliding-window inference normalises once, then runs tiles).
- Pads the input on the bottom and right to the network's required multiple and crops the
  logits back (segexp/ops/padding.py), so the output has the input's height and width and padded
  pixels never reach the loss or the metrics.
- Networks that return a dict (torchvision's DeepLabV3: ``out`` and ``aux``) give plain logits
  in eval mode and ``{"out", "aux"}`` in training mode when an auxiliary head exists.
- While the encoder is frozen, ``train()`` keeps it in eval mode, so BatchNorm statistics stay.

The config (conf/model/*.yaml) names this class; its ``net`` node names the architecture.
"""

import logging
from collections.abc import Sequence

import torch
from torch import nn

from segexp.errors import SegexpError
from segexp.ops.padding import pad_to_multiple

log = logging.getLogger(__name__)


def find_encoder(net: nn.Module) -> nn.Module | None:
    """The pretrained part: ``encoder`` (segexp, SMP) or ``backbone`` (torchvision)."""
    for name in ("encoder", "backbone"):
        module = getattr(net, name, None)
        if isinstance(module, nn.Module):
            return module
    return None


def _channel_stats(values: Sequence[float]) -> torch.Tensor:
    return torch.tensor([float(v) for v in values], dtype=torch.float32).view(1, -1, 1, 1)


class SegmentationModel(nn.Module):
    """``net`` plus segexp's input stage and training settings (see the module docstring).

    mean, std: per-channel statistics on the 0-255 scale (``${dataset.mean}``).
    size_multiple: pad inputs to a multiple of this (e.g. 32 for five-level encoders).
    freeze_encoder_epochs: the encoder (weights and BatchNorm statistics) is frozen for epochs
        1..N, then fine-tuned.
    encoder_lr_mult: the encoder's learning rate is the optimizer's lr times this.
    aux_loss_weight: weight of an auxiliary head's loss (torchvision's DeepLabV3 ``aux``).
    """

    def __init__(
        self,
        net: nn.Module,
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
        size_multiple: int = 1,
        freeze_encoder_epochs: int = 0,
        encoder_lr_mult: float = 1.0,
        aux_loss_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if size_multiple < 1:
            raise SegexpError(f"model.size_multiple={size_multiple}: must be at least 1")
        if len(mean) != len(std):
            raise SegexpError(f"model.mean has {len(mean)} values but model.std {len(std)}")
        if min(float(s) for s in std) <= 0:
            raise SegexpError(
                f"dataset.std={list(std)}: every channel's std must be positive (the audit, "
                "python -m segexp.audit, measures yours)"
            )
        if encoder_lr_mult < 0:
            raise SegexpError(
                f"model.encoder_lr_mult={encoder_lr_mult}: use a value >= 0 (1 = same lr)"
            )
        self.net = net
        # Not in the state dict: they come from the config, and checkpoints stay loadable.
        self.register_buffer("mean", _channel_stats(mean), persistent=False)
        self.register_buffer("std", _channel_stats(std), persistent=False)
        self.size_multiple = int(size_multiple)
        self.freeze_encoder_epochs = int(freeze_encoder_epochs)
        self.encoder_lr_mult = float(encoder_lr_mult)
        self.aux_loss_weight = float(aux_loss_weight)
        self.encoder_frozen = False

    @property
    def encoder(self) -> nn.Module | None:
        return find_encoder(self.net)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (0-255) images -> float32, normalised per channel."""
        return (images.float() - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        if not x.is_floating_point():
            x = self.normalize(x)
        height, width = x.shape[-2], x.shape[-1]
        out = self.net(pad_to_multiple(x, self.size_multiple))
        aux = None
        if isinstance(out, dict):
            out, aux = out["out"], out.get("aux")
        out = out[..., :height, :width]
        if aux is not None and self.training:
            return {"out": out, "aux": aux[..., :height, :width]}
        return out

    def set_encoder_frozen(self, frozen: bool) -> None:
        encoder = self.encoder
        if encoder is None:
            raise SegexpError(
                f"{type(self.net).__name__} has no separate encoder to freeze: set "
                "model.freeze_encoder_epochs=0 or choose a model with a pretrained encoder"
            )
        self.encoder_frozen = frozen
        for p in encoder.parameters():
            p.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> "SegmentationModel":
        super().train(mode)
        if self.encoder_frozen and self.encoder is not None:
            self.encoder.eval()  # BatchNorm running statistics stay as loaded
        return self
