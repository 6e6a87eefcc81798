"""A plan written as a config folder of the user's: ``<out>/dataset/<name>.yaml`` (the dataset
config with the planned data keys) and ``<out>/experiment/<name>.yaml`` (everything else), run
with ``segexp --config-dir <out> +experiment=<name>``. Every value is an ordinary key."""

import datetime
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from segexp.config.paths import config_exists
from segexp.errors import SegexpError
from segexp.planning.rules import Choice
from segexp.storage.files import atomic_write, check_output

GROUPS = ("model",)  # keys that choose a config group's option rather than set a value


def preset_paths(out: Path, name: str) -> dict[str, Path]:
    return {kind: out / kind / f"{name}.yaml" for kind in ("dataset", "experiment")}


def check_preset(out: Path, name: str, overwrite: bool) -> dict[str, Path]:
    """Before any work: both files can be written (an existing preset only with overwrite), and
    the name is none of segexp's own configs (Hydra would pick those over the preset's)."""
    shipped = [kind for kind in ("dataset", "experiment") if config_exists(f"{kind}/{name}")]
    if shipped:
        raise SegexpError(
            f"preset={name} is the name of segexp's own {shipped[0]} config, which would be used "
            "instead of the preset's: give another preset=<name>"
        )
    check_output(out, "out", folder=True)
    return {kind: check_output(p, "out", folder=False, overwrite=overwrite)
            for kind, p in preset_paths(out, name).items()}  # fmt: skip


def _nested(keys: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for dotted, value in keys.items():
        *path, last = dotted.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return tree


class _Dumper(yaml.SafeDumper):
    """Mappings as blocks, a list of plain values on one line: what a config file looks like."""


def _sequence(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flat = all(not isinstance(v, dict | list) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(list, _sequence)


def _dump(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


def _changed(node: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``node`` that differ from ``base`` (nested mappings merge in Hydra: only the
    keys that changed within them)."""
    changed = {}
    for key, value in node.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            value = _changed(value, base[key])
            if value:
                changed[key] = value
        elif key not in base or value != base[key]:
            changed[key] = value
    return changed


def _planned(choices: list[Choice]) -> dict[str, Any]:
    return {k: v for choice in choices for k, v in choice.keys.items()}


def dataset_preset(
    dataset: DictConfig, name: str, choices: list[Choice], base: tuple[str, DictConfig] | None
) -> dict[str, Any]:
    """The preset's dataset config: the planned ``dataset.*`` keys on the dataset as planned.
    With ``base`` (the config it came from, by name and as composed alone), that config as
    default and only the keys that differ from it; else the whole node."""
    keys = _planned(choices)
    data = {k.removeprefix("dataset."): v for k, v in keys.items() if k.startswith("dataset.")}
    node = OmegaConf.to_container(dataset, resolve=False)
    node.update(name=name, **data)
    if base is None:
        return node
    base_name, base_node = base
    changed = _changed(node, OmegaConf.to_container(base_node, resolve=False))
    return {"defaults": [base_name, "_self_"], **changed}


def write_preset(
    paths: dict[str, Path], name: str, dataset: dict[str, Any], choices: list[Choice], header: str
) -> None:
    """The two files of the preset (atomically: a failure leaves no half preset); ``dataset``:
    from dataset_preset."""
    keys = _planned(choices)
    rest = {k: v for k, v in keys.items() if not k.startswith("dataset.") and k not in GROUPS}
    defaults = [{"override /dataset": name}, *({f"override /{g}": keys[g]} for g in GROUPS)]
    stamp = datetime.date.today().isoformat()
    lines = [f"#   {c.name}: {c.why}" for c in choices]
    out = paths["experiment"].parent.parent
    intro = (
        f"# Planned by segexp-plan ({stamp}): {header}\n"
        f"#   python -m segexp --config-dir {out} +experiment={name}\n"
        "# Every value is an ordinary key: override any of them on that command line. Why each:\n"
        + "\n".join(lines) + "\n"
    )  # fmt: skip
    with atomic_write(paths["dataset"]) as f:
        f.write(f"# The dataset of the preset {name}; planned data keys set below the others.\n")
        f.write(_dump(dataset))
    with atomic_write(paths["experiment"]) as f:
        f.write("# @package _global_\n" + intro)
        f.write(_dump({"defaults": [*defaults, "_self_"], **_nested(rest)}))
