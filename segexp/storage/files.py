"""JSON records (summary.json, metrics.json, audit.json, caches), written atomically."""

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json(data: dict[str, Any], path: Path) -> None:
    """Atomic: a reader never sees half a file. NaN (a class absent from a split) becomes null."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(_nan_to_none(data), f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value
