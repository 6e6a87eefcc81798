"""Early stopping on a validation metric (``trainer.early_stopping``), resumable.

Its state lives in ``Progress.early_stopping`` (a plain dict in the checkpoint), so a resumed run
keeps counting epochs without improvement where the interrupted one stopped. The settings and
their allowed values: config/trainer.py ``EarlyStoppingSettings``.
"""

from typing import Any

from segexp.config.trainer import EarlyStoppingSettings
from segexp.errors import SegexpError


class EarlyStopping:
    def __init__(self, settings: EarlyStoppingSettings) -> None:
        if settings.patience is None:
            raise ValueError("early stopping is off (trainer.early_stopping.patience=null)")
        self.settings = settings
        self.metric = settings.monitor.partition("/")[2]

    def value(self, val: dict[str, Any], val_loss: float | None) -> float:
        if self.metric == "loss":
            if val_loss is None:
                raise SegexpError("trainer.early_stopping.monitor=val/loss: no validation loss")
            return float(val_loss)
        return float(val[self.metric])

    def improved(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        if self.settings.mode == "max":
            return value > best + self.settings.min_delta
        return value < best - self.settings.min_delta

    def update(self, state: dict[str, Any], value: float, epoch: int) -> dict[str, Any]:
        """The new state after ``epoch``; ``stopped_epoch`` set when patience ran out."""
        state = {"best": None, "best_epoch": 0, "wait": 0, "stopped_epoch": None, **state}
        if self.improved(value, state["best"]):
            state.update(best=value, best_epoch=epoch, wait=0)
        else:
            state["wait"] += 1
            if state["wait"] >= self.settings.patience and epoch >= self.settings.min_epochs:
                state["stopped_epoch"] = epoch
        return state

    def reason(self, state: dict[str, Any]) -> str:
        s = self.settings
        return (
            f"{s.monitor} did not improve by more than {s.min_delta} ({s.mode}) for "
            f"{s.patience} epochs after its best {state['best']:.4f} at epoch "
            f"{state['best_epoch']}"
        )


def build_early_stopping(settings: EarlyStoppingSettings) -> EarlyStopping | None:
    """None unless ``trainer.early_stopping.patience`` is set."""
    return None if settings.patience is None else EarlyStopping(settings)
