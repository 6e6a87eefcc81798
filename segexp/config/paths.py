"""Where the config tree is: conf/ beside the package in a checkout, or inside the wheel.
Importing this module also registers what the tree uses besides its files: the interpolations
(config/resolvers.py) and the trainer's typed schema (config/trainer.py)."""

import importlib.resources
from pathlib import Path

from segexp.config import resolvers, trainer  # noqa: F401  (register what conf/ uses)

# A checkout (and an editable install) reads conf/ at the repository's top level, so edits there
# take effect at once. A wheel ships the same files as the package segexp.conf (pyproject.toml).
CHECKOUT_CONF = Path(__file__).resolve().parents[2] / "conf"


def config_dir() -> str:
    """A path or a ``pkg://`` location for ``hydra.main(config_path=...)``; absolute either way,
    because ``python -m`` would otherwise make Hydra look for a Python package named conf."""
    if (CHECKOUT_CONF / "config.yaml").is_file():
        return str(CHECKOUT_CONF)
    return "pkg://segexp.conf"


CONFIG_DIR = config_dir()


def config_exists(name: str) -> bool:
    """Whether segexp's config tree holds ``<name>.yaml`` (e.g. "dataset/isbi2012"), in a
    checkout or in the installed package."""
    if CONFIG_DIR.startswith("pkg://"):
        return importlib.resources.files("segexp.conf").joinpath(f"{name}.yaml").is_file()
    return (Path(CONFIG_DIR) / f"{name}.yaml").is_file()
