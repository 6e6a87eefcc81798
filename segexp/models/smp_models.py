"""segmentation_models_pytorch architectures whose encoder weights never download by surprise."""

from typing import Any

from torch import nn

from segexp.errors import SegexpError
from segexp.models.weights import load_into, load_weights, looks_like_path, smp_imagenet


def smp_model(
    arch: str,
    in_channels: int,
    classes: int,
    encoder_name: str = "resnet34",
    encoder_weights: str | None = None,
    allow_download: bool = False,
    **kwargs: Any,
) -> nn.Module:
    """``smp.create_model`` with ``encoder_weights`` null, 'imagenet' (or another SMP weights
    name), or a file path; pretrained weights come from the local Hugging Face cache."""
    import segmentation_models_pytorch as smp

    try:
        model = smp.create_model(
            arch,
            encoder_name=encoder_name,
            encoder_weights=None,
            in_channels=in_channels,
            classes=classes,
            **kwargs,
        )
    except KeyError as err:
        raise SegexpError(
            f"model.net.encoder_name={encoder_name} is not an SMP encoder for {arch} ({err}); see "
            "segmentation_models_pytorch.encoders.get_encoder_names() or use a tu-<timm name>"
        ) from None
    encoder = model.encoder.model if encoder_name.startswith("tu-") else model.encoder
    key = "model.net.encoder_weights"
    if encoder_weights is not None and not looks_like_path(str(encoder_weights)):
        # SMP names its pretrained sets ("imagenet", "ssl", ...); all come from the local cache.
        state, source = smp_imagenet(encoder_name, str(encoder_weights), allow_download, key)()
        load_into(encoder, state, source)
    else:
        load_weights(encoder, encoder_weights, None, key=key)
    return model
