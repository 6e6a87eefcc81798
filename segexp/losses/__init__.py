"""Segmentation losses: logits (N, C, H, W) against int64 class maps (N, H, W).

Each module exposes a factory (or class) that a Hydra config names with ``_target_``.
"""
