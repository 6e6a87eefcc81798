"""Segmentation models: each takes (N, in_channels, H, W) and returns (N, num_classes, H, W)."""
