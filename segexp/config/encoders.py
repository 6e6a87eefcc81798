"""Is a model config's encoder name one that smp or timm knows? (checked before any work)"""

import difflib

from omegaconf import DictConfig

from segexp.errors import SegexpError

TIMM_PREFIX = "tu-"  # smp's prefix for any timm backbone: encoder_name=tu-resnet18


def known_encoders() -> list[str]:
    """smp's own encoders, and every timm model under smp's ``tu-`` prefix."""
    import timm
    from segmentation_models_pytorch.encoders import get_encoder_names

    return [*get_encoder_names(), *(TIMM_PREFIX + name for name in timm.list_models())]


def check_encoder(model: DictConfig, key: str = "encoder_name") -> None:
    """Raise a SegexpError listing close matches when ``model.<key>`` is not a known encoder.

    Models without that key (e.g. the repository's own U-Net) pass untouched.
    """
    name = model.get(key)
    if name is None:
        return
    names = known_encoders()
    if str(name) in names:
        return
    close = difflib.get_close_matches(str(name), names, n=5, cutoff=0.6)
    hint = f"close matches: {', '.join(close)}" if close else "no close match"
    raise SegexpError(
        f"model.net.{key}={name} is not an encoder that segmentation_models_pytorch or timm (as "
        f"{TIMM_PREFIX}<timm name>) knows ({hint}): fix model.net.{key}"
    )
