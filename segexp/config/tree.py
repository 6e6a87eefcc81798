"""The resolved config as a tree, printed when a run starts (``trainer.print_config``).

rich draws it when installed (as lightning-hydra-template does); otherwise a plain indented
tree. Groups come in the order of the config file, run folder and device first.
"""

import io
from typing import Any

from omegaconf import DictConfig, OmegaConf


def config_tree(cfg: DictConfig, header: dict[str, str]) -> str:
    container = OmegaConf.to_container(cfg, resolve=True)
    try:
        return _rich_tree(container, header)
    except ImportError:
        return _plain_tree(container, header)


def _leaf(value: Any) -> str:
    return "null" if value is None else str(value)


def _plain_tree(container: dict[str, Any], header: dict[str, str]) -> str:
    lines = [f"{key}: {value}" for key, value in header.items()]

    def walk(node: Any, depth: int) -> None:
        for key, value in node.items():
            pad = "    " * depth
            if isinstance(value, dict) and value:
                lines.append(f"{pad}{key}")
                walk(value, depth + 1)
            else:
                lines.append(f"{pad}{key}: {_leaf(value)}")

    walk(container, 0)
    return "\n".join(lines)


def _rich_tree(container: dict[str, Any], header: dict[str, str]) -> str:
    from rich.console import Console
    from rich.text import Text
    from rich.tree import Tree

    # Text, not markup strings: values such as [64, 64] are not rich tags.
    root = Tree(Text("config", style="bold"))
    for key, value in header.items():
        root.add(Text.assemble((key, "bold"), f": {value}"))

    def walk(tree: Tree, node: dict[str, Any]) -> None:
        for key, value in node.items():
            if isinstance(value, dict) and value:
                walk(tree.add(Text(key, style="bold")), value)
            else:
                tree.add(Text(f"{key}: {_leaf(value)}"))

    walk(root, container)
    out = io.StringIO()
    Console(file=out, width=100, color_system=None, highlight=False).print(root)
    return out.getvalue().rstrip()
