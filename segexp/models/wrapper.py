"""The one wrapper every model runs in: any input size, plain logits, a freezable encoder.

- Pads the input on the bottom and right to the network's required multiple (reflection where
  the image is large enough, zeros otherwise) and crops the logits back, so the output always
  has the input's height and width and padded pixels never reach the loss or the metrics.
- Networks that return a dict (torchvision's DeepLabV3: ``out`` and ``aux``) give plain logits
  in eval mode and ``{"out", "aux"}`` in training mode when an auxiliary head exists.
- While the encoder is frozen, ``train()`` keeps it in eval mode, so BatchNorm statistics stay.
"""

import logging

import torch
import torch.nn.functional as F
from torch import nn

from segexp.errors import SegexpError

log = logging.getLogger(__name__)


def find_encoder(net: nn.Module) -> nn.Module | None:
    """The pretrained part: ``encoder`` (segexp, SMP) or ``backbone`` (torchvision)."""
    for name in ("encoder", "backbone"):
        module = getattr(net, name, None)
        if isinstance(module, nn.Module):
            return module
    return None


class SegmentationModel(nn.Module):
    def __init__(self, net: nn.Module, size_multiple: int = 1) -> None:
        super().__init__()
        if size_multiple < 1:
            raise SegexpError(f"model.size_multiple={size_multiple}: must be at least 1")
        self.net = net
        self.size_multiple = int(size_multiple)
        self.encoder_frozen = False

    @property
    def encoder(self) -> nn.Module | None:
        return find_encoder(self.net)

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        height, width = x.shape[-2:]
        m = self.size_multiple
        pad_h, pad_w = (-height) % m, (-width) % m
        if pad_h or pad_w:
            reflect = pad_h < height and pad_w < width
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if reflect else "constant")
        out = self.net(x)
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
