"""What marks a folder as holding a run: the files a run leaves (Hydra's own .hydra/ and
segexp.log are not a record; they are written before segexp runs)."""

from pathlib import Path

from segexp.storage.lock import LOCK_NAME

RECORD = ("summary.json", "checkpoints", "resolved_config.yaml", LOCK_NAME)


def holds_run(folder: Path | str) -> bool:
    folder = Path(folder)
    return any((folder / name).exists() for name in RECORD)
