"""Early stopping on a validation metric (``trainer.early_stopping``), resumable.

Its state lives in ``Progress.early_stopping`` (a plain dict in the checkpoint), so a resumed run
keeps counting epochs without improvement where the interrupted one stopped.
"""

from typing import Any

from omegaconf import DictConfig

from segexp.errors import SegexpError

METRICS = ("mIoU", "mDice", "pixel_acc", "mean_class_acc", "loss")


class EarlyStopping:
    def __init__(
        self, monitor: str, mode: str, patience: int, min_delta: float = 0.0, min_epochs: int = 0
    ) -> None:
        split, _, metric = monitor.partition("/")
        if split != "val" or metric not in METRICS:
            raise SegexpError(
                f"trainer.early_stopping.monitor={monitor}: use val/<metric>, metric one of "
                f"{', '.join(METRICS)}"
            )
        if mode not in ("max", "min"):
            raise SegexpError(f"trainer.early_stopping.mode={mode}: use max or min")
        if int(patience) < 1:
            raise SegexpError(f"trainer.early_stopping.patience={patience}: use 1 or more")
        self.monitor, self.metric, self.mode = monitor, metric, mode
        self.patience, self.min_delta = int(patience), abs(float(min_delta))
        self.min_epochs = int(min_epochs)

    def value(self, val: dict[str, Any], val_loss: float | None) -> float:
        if self.metric == "loss":
            if val_loss is None:
                raise SegexpError("trainer.early_stopping.monitor=val/loss: no validation loss")
            return float(val_loss)
        return float(val[self.metric])

    def improved(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        if self.mode == "max":
            return value > best + self.min_delta
        return value < best - self.min_delta

    def update(self, state: dict[str, Any], value: float, epoch: int) -> dict[str, Any]:
        """The new state after ``epoch``; ``stopped_epoch`` set when patience ran out."""
        state = {"best": None, "best_epoch": 0, "wait": 0, "stopped_epoch": None, **state}
        if self.improved(value, state["best"]):
            state.update(best=value, best_epoch=epoch, wait=0)
        else:
            state["wait"] += 1
            if state["wait"] >= self.patience and epoch >= self.min_epochs:
                state["stopped_epoch"] = epoch
        return state

    def reason(self, state: dict[str, Any]) -> str:
        return (
            f"{self.monitor} did not improve by more than {self.min_delta} ({self.mode}) for "
            f"{self.patience} epochs after its best {state['best']:.4f} at epoch "
            f"{state['best_epoch']}"
        )


def build_early_stopping(node: DictConfig | None) -> EarlyStopping | None:
    """None unless ``trainer.early_stopping.patience`` is set."""
    if node is None or node.get("patience") is None:
        return None
    return EarlyStopping(
        str(node.get("monitor", "val/mIoU")),
        str(node.get("mode", "max")),
        int(node.patience),
        float(node.get("min_delta", 0.0)),
        int(node.get("min_epochs") or 0),
    )
