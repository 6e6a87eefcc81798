"""``logger=csv``: the run's metrics as spreadsheet-ready files in the run folder.

- ``metrics_steps.csv``: one row per logged optimizer step (train/loss, train/lr)
- ``metrics_epochs.csv``: one row per epoch (train/epoch_loss, val/*, val_iou/*, ...)
- ``final.csv``: one row, the run's hyperparameters and final metrics (a sweep's rows stack)

Each file is rewritten whole on flush (a few kB): its columns grow as new tags arrive, which an
append-only CSV cannot do.
"""

import csv
from pathlib import Path
from typing import Any

STEP_TAGS = ("train/loss", "train/lr")  # logged per optimizer step; everything else per epoch


class CSVWriter:
    def __init__(self, log_dir: str, purge_step: int | None = None) -> None:
        self.folder = Path(log_dir)
        self.files = {
            "steps": self.folder / "metrics_steps.csv",
            "epochs": self.folder / "metrics_epochs.csv",
        }
        self.rows: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in self.files}
        if purge_step is not None:  # resumed: keep what the earlier sessions logged
            self._read(purge_step)

    def _read(self, purge_step: int) -> None:
        for name, path in self.files.items():
            if not path.is_file():
                continue
            with path.open(newline="") as file:
                for row in csv.DictReader(file):
                    step = int(row.pop(_index(name)))
                    # steps.csv counts optimizer steps; epochs up to the checkpoint are kept whole
                    if name == "epochs" or step < purge_step:
                        self.rows[name][step] = {k: v for k, v in row.items() if v != ""}

    def add_scalar(self, tag: str, value: float, step: int | None = None) -> None:
        if step is None:
            return  # single values arrive through log_hparams
        name = "steps" if tag in STEP_TAGS else "epochs"
        self.rows[name].setdefault(int(step), {})[tag] = float(value)

    def add_text(self, tag: str, text: str, step: int | None = None) -> None:
        pass

    def add_image(self, tag: str, image: Any, step: int | None = None) -> None:
        pass

    def log_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        _write(self.folder / "final.csv", [{**hparams, **metrics}])

    def flush(self) -> None:
        for name, path in self.files.items():
            if self.rows[name]:
                rows = [{_index(name): s, **r} for s, r in sorted(self.rows[name].items())]
                _write(path, rows)

    def close(self) -> None:
        self.flush()


def _index(name: str) -> str:
    return "step" if name == "steps" else "epoch"


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
