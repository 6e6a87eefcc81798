"""Configs of earlier versions, brought to the current layout: those stored in checkpoints
(``upgrade``), and keys typed from old notes (``RENAMED_KEYS``: one line naming the new key).

segexp 0.1 kept a model's constructor arguments and segexp's own keys (size_multiple,
freeze_encoder_epochs, aux_loss_weight) in one node, the encoder learning-rate multiplier in the
optimizer node, and some constructors at other import paths; ``trainer.channels_last`` could be
"auto" (on CUDA only). The weights are unchanged: only the config that rebuilds the model around
them moved. Trainer keys a stored config lacks take their defaults (config/trainer.py, which
brings stored trainer values up to date with ``upgrade_trainer``).
"""

from typing import Any

WRAPPER = "segexp.models.wrapper.SegmentationModel"
WRAPPER_KEYS = ("size_multiple", "freeze_encoder_epochs", "aux_loss_weight")
# Every key renamed since 0.1, with its new name (the model's architecture moved under
# model.net; loggers became a list of named nodes).
ARCHITECTURE_KEYS = (
    "arch", "aux_loss", "backbone", "base_channels", "bilinear", "classes", "decoder_channels",
    "depth", "encoder", "encoder_name", "encoder_weights", "in_channels", "num_classes",
    "weights", "allow_download",
)  # fmt: skip
RENAMED_KEYS = {
    **{f"model.{key}": f"model.net.{key}" for key in ARCHITECTURE_KEYS},
    "optimizer.encoder_lr_mult": "model.encoder_lr_mult",
    "logger.flush_secs": "logger.tensorboard.flush_secs",
}
MOVED_TARGETS = {
    "segexp.schedulers.": "segexp.training.schedulers.",
    "segexp.writers.": "segexp.training.loggers.",
    "segexp.sweep_callback.": "segexp.sweeps.callback.",
}


def _moved(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _moved(v) for k, v in node.items()}
        target = out.get("_target_")
        for old, new in MOVED_TARGETS.items():
            if isinstance(target, str) and target.startswith(old):
                out["_target_"] = new + target[len(old) :]
        return out
    if isinstance(node, list):
        return [_moved(v) for v in node]
    return node


def renamed_key(key: str) -> str | None:
    """The current name of an old key (or of a key below it), else None."""
    for old, new in RENAMED_KEYS.items():
        if key == old or key.startswith(old + "."):
            return new + key[len(old) :]
    return None


def renamed_key_message(key: str, override: str | None = None) -> str:
    """One line for an old key: given in ``override`` on the command line, or found in the
    composed config (a config file of the user's)."""
    new = renamed_key(key)
    if override is None:
        fix = f"rename it in your config file to {new}"
    else:
        deleted = override.startswith("~")
        fix = f"give {'~' if deleted else ''}{new}{override.lstrip('+~')[len(key) :]}"
    return f"{key} is now {new} (segexp renamed it): {fix}"


def upgrade_trainer(trainer: dict[str, Any]) -> dict[str, Any]:
    """A stored ``trainer`` node (plain containers) -> the current settings' values."""
    if trainer.get("channels_last") == "auto":
        return {**trainer, "channels_last": False}  # the memory format changes no weight
    return trainer


def upgrade(config: dict[str, Any]) -> dict[str, Any]:
    """A resolved config (plain containers) from any segexp version -> the current layout."""
    config = _moved(config)
    model = config.get("model", {})
    if model.get("_target_") != WRAPPER:
        net = {k: v for k, v in model.items() if k not in WRAPPER_KEYS}
        optimizer = dict(config.get("optimizer", {}))
        config["model"] = {
            "_target_": WRAPPER,
            "net": net,
            "mean": config["dataset"]["mean"],
            "std": config["dataset"]["std"],
            **{k: model[k] for k in WRAPPER_KEYS if k in model},
            "encoder_lr_mult": optimizer.pop("encoder_lr_mult", 1.0),
        }
        config["optimizer"] = optimizer
    return config
