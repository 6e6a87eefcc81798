"""Tensor operations shared by models, data and inference."""
