"""Datasets return (uint8 image (C, H, W), integer mask (H, W)) tensor pairs."""
