"""`build_model(cfg.model)`: the constructor named by ``_target_``, inside SegmentationModel.

A model config holds constructor arguments plus a few keys that segexp itself reads (RUN_KEYS);
those are removed before ``hydra.utils.instantiate`` sees the node.
"""

from omegaconf import DictConfig, OmegaConf

from segexp.config import build
from segexp.models.wrapper import SegmentationModel

RUN_KEYS = ("size_multiple", "freeze_encoder_epochs", "aux_loss_weight")


def constructor_node(node: DictConfig) -> DictConfig:
    data = OmegaConf.to_container(node, resolve=True)
    return OmegaConf.create({k: v for k, v in data.items() if k not in RUN_KEYS})


def build_model(node: DictConfig) -> SegmentationModel:
    net = build(constructor_node(node))
    return SegmentationModel(net, size_multiple=int(node.get("size_multiple", 1)))
