"""The one padding helper: bottom/right padding of image-like tensors, and cropping back.

Used by the model wrapper (sizes a network needs), sliding-window inference (images smaller than
a tile) and batch collation (images of different sizes). Only bottom and right are padded, so a
pixel keeps its coordinates and cropping ``[..., :height, :width]`` undoes the padding.

The pad amounts are computed from the tensor's shape without Python branches, so a traced or
exported graph pads correctly at every input size, not only at the size it was traced with.
"""

import torch
import torch.nn.functional as F


def pad_bottom_right(
    x: torch.Tensor, pad_h: int, pad_w: int, *, mode: str = "constant", value: float = 0.0
) -> torch.Tensor:
    """Pad the last two dimensions by ``pad_h`` rows and ``pad_w`` columns (0 is a no-op)."""
    if mode == "constant":
        return F.pad(x, (0, pad_w, 0, pad_h), mode="constant", value=value)
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def pad_to_size(x: torch.Tensor, height: int, width: int, **kwargs) -> torch.Tensor:
    """Pad up to at least (height, width); a larger input is left as it is."""
    pad_h = max(0, height - x.shape[-2])
    pad_w = max(0, width - x.shape[-1])
    return pad_bottom_right(x, pad_h, pad_w, **kwargs) if pad_h or pad_w else x


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad height and width up to a multiple of ``multiple``: by reflection where the image is
    large enough (no artificial edge for the network to see), with zeros otherwise."""
    if multiple == 1:
        return x
    height, width = x.shape[-2], x.shape[-1]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    reflect = pad_h < height and pad_w < width  # reflection cannot pad more than the size
    return pad_bottom_right(x, pad_h, pad_w, mode="reflect" if reflect else "constant")
