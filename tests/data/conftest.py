"""Helpers shared by the tests of segexp.data."""

from segexp.config.build import build
from tests.conftest import compose_config


def folder_split(root, split, *overrides):
    cfg = compose_config(["dataset=folder", f"dataset.root={root}", *overrides])
    return build(cfg.dataset[split])
