"""What a split is made of, as a short hash: the same files (or the same generated scenes) give
the same hash on any machine, so two runs can tell whether they were scored on the same
test images (sweeps/protocol.py)."""

import hashlib
from typing import Any


def split_hash(dataset: Any) -> dict[str, Any] | None:
    """``count`` samples and a ``sha256`` over the sorted file names and sizes (a folder
    dataset's image and mask files) or over the generator's settings and sample names (the
    synthetic scenes); None for anything else (e.g. the fixed batches of overfit_batches)."""
    pairs = getattr(dataset, "pairs", None)
    if pairs is not None:
        entries = sorted(
            f"{image.name}\t{image.stat().st_size}\t{mask.name}\t{mask.stat().st_size}"
            for image, mask in pairs
        )
        by = "file names and sizes"
    elif getattr(dataset, "source", None) is not None:
        entries = [repr(dataset.source), *dataset.names]
        by = "generator settings and sample names"
    else:
        return None
    digest = hashlib.sha256("\n".join(entries).encode()).hexdigest()[:16]
    return {"count": len(dataset), "sha256": digest, "by": by}
