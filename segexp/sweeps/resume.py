"""Resuming a sweep: a job folder that already holds a completed run of the same config is kept."""

import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from segexp.errors import SegexpError


def config_hash(cfg: DictConfig) -> str:
    """A fingerprint of the resolved job config (Hydra's own settings are not part of it)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    text = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def completed_run(run_dir: Path, fingerprint: str) -> dict[str, Any] | None:
    """The summary of a completed run of this config in run_dir, else None (run the job).

    A completed run of a different config is never overwritten: that is an error.
    """
    path = run_dir / "summary.json"
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if summary.get("status") != "completed":
        return None
    if summary.get("config_hash") != fingerprint:
        raise SegexpError(
            f"{path} holds a completed run of a different config: resume a sweep with the same "
            "command, or give a new hydra.sweep.dir"
        )
    return summary
