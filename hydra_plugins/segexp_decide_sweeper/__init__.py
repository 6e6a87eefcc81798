"""segexp's adaptive-seed sweeper for Hydra: ``hydra/sweeper=segexp_decide``."""
