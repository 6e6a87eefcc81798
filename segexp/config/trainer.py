"""The ``trainer`` group as an object: every setting's type, default and allowed values, here once.

``conf/trainer/default.yaml`` takes this definition as its schema (registered below as
``trainer/settings`` in Hydra's ConfigStore), so a composed config already refuses an unknown or
misspelt key (``Key 'epoch' not in 'TrainerSettings'``) and a value of the wrong type. Ranges are
checked when the object is built (``trainer_settings``), before any work: one line naming the key,
the value and what is allowed. The loop reads this object, never ``cfg.trainer.get(key, default)``.
"""

import itertools
import re
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from segexp.config.legacy import upgrade_trainer
from segexp.config.schema import Check, auto_or, boolean, integer, number, one_of
from segexp.errors import SegexpError

EARLY_STOPPING_METRICS = ("mIoU", "mDice", "pixel_acc", "mean_class_acc", "loss")
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
DURATION_PART = re.compile(r"(\d+(?:\.\d*)?)\s*(h|min|m|s)?")
SECONDS = {"h": 3600.0, "min": 60.0, "m": 60.0, "s": 1.0, None: 1.0}


def duration_seconds(value: Any) -> float | None:
    """A duration as given (90, "90s", "30min", "2h", "1h30min") in seconds; None when null or
    not a duration."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value > 0 else None
    text = str(value).strip().lower()
    parts = DURATION_PART.findall(text)
    if not parts or DURATION_PART.sub("", text).strip():
        return None
    seconds = sum(float(number) * SECONDS[unit or None] for number, unit in parts)
    return seconds if seconds > 0 else None


def step_plan(value: Any) -> list[list[int]] | None:
    """``trainer.max_steps`` as a plan: [[from_step, total_steps], ...] (an int N is [[0, N]]);
    None when it is not one."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [[0, value]] if value >= 1 else None
    if not isinstance(value, list | tuple) or not value:
        return None
    plan = [list(entry) for entry in value if isinstance(entry, list | tuple) and len(entry) == 2]
    whole = all(integer(0)(v, None) for entry in plan for v in entry)
    ordered = all(a[0] < b[0] for a, b in itertools.pairwise(plan))
    if len(plan) != len(value) or not whole or not ordered or plan[0][0] != 0:
        return None
    return plan if all(total >= max(1, start) for start, total in plan) else None


def setting(default: Any, allowed: str, ok: Check) -> Any:
    """A dataclass field with what it may hold: ``allowed`` is what the error message says."""
    return field(default=default, metadata={"allowed": allowed, "ok": ok})


def _check_fields(settings: object) -> None:
    for f in fields(settings):
        value = getattr(settings, f.name)
        if "ok" in f.metadata and not f.metadata["ok"](value, None):
            raise SegexpError(
                f"{settings.KEY}.{f.name}={value!r} is not allowed: give {f.metadata['allowed']}"
            )


def _monitor(value: Any, cfg: Any) -> bool:
    split, _, metric = str(value).partition("/")
    return split == "val" and metric in EARLY_STOPPING_METRICS


def _device(value: Any, cfg: Any) -> bool:
    return isinstance(value, str) and DEVICE.fullmatch(value) is not None


@dataclass
class EarlyStoppingSettings:
    """Stop when the monitored validation metric stops improving (training/early_stopping.py)."""

    KEY: ClassVar[str] = "trainer.early_stopping"
    monitor: str = setting("val/mIoU", f"val/<{' | '.join(EARLY_STOPPING_METRICS)}>", _monitor)
    mode: str = setting("max", "max or min", one_of("max", "min"))
    # Epochs without improvement before stopping; null: early stopping is off.
    patience: int | None = setting(None, "an integer >= 1, or null (off)", integer(1, null=True))
    min_delta: float = setting(0.0, "a number >= 0", number(0))  # smaller changes do not count
    # Never stop before this epoch (past the plateau of the first epochs).
    min_epochs: int = setting(0, "an integer >= 0", integer(0))

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass
class EmaSettings:
    """An exponential moving average of the weights, used to validate and test (training/ema.py)."""

    KEY: ClassVar[str] = "trainer.ema"
    # Per optimizer step, e.g. 0.999; null: off.
    decay: float | None = setting(
        None,
        "a number between 0 and 1 (both excluded), e.g. 0.999, or null (off)",
        lambda v, c: v is None or (number(above=0)(v, c) and v < 1),
    )
    warmup: int = setting(100, "an integer >= 0", integer(0))  # steps over which decay ramps up

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass
class TrainerSettings:
    """How a run trains: its length, device and numerics, and what it records."""

    KEY: ClassVar[str] = "trainer"
    # The run's length: whichever of these ends first (docs/training.md, "A run's length").
    # conf/trainer/default.yaml: the dataset config's own `epochs` when it has one, else this;
    # null: no cap in epochs (a time budget or a step count decides).
    epochs: int | None = setting(17, "an integer >= 1, or null", integer(1, null=True))
    # Wall clock from the run's start to summary.json, the final test pass included: 90 (s),
    # "90s", "30min", "2h"; the schedule is laid out over the steps that fit (training/budget.py).
    time_budget: Any = setting(
        None,
        "a duration: seconds (e.g. 90), or 90s, 30min, 2h; or null",
        lambda v, c: v is None or duration_seconds(v) is not None,
    )
    # Optimizer steps: N, or a budgeted run's plan [[0, N0], [step, N1], ...] to repeat it exactly
    # without its budget (its summary.json gives the override).
    max_steps: Any = setting(
        None,
        "an integer >= 1, or [[0, total], [from_step, total], ...], or null",
        lambda v, c: v is None or step_plan(v) is not None,
    )
    device: str = setting("auto", "auto, cpu, cuda or cuda:N", _device)
    # auto: bf16 on CUDA where supported, else fp16 + GradScaler; on a CPU bf16 with AMX, else
    # fp32 (docs/performance.md)
    precision: str = setting(
        "auto", "auto, bf16, fp16 or fp32", one_of("auto", "bf16", "fp16", "fp32")
    )
    # CPU threads of torch; auto: the free cores, shared among parallel jobs (runtime/threads.py)
    num_threads: Any = setting("auto", "auto or an integer >= 1", auto_or(integer(1)))
    channels_last: bool = setting(True, "true or false", boolean)  # NHWC tensors
    # true: torch.compile (the first steps are slow while it compiles); or a backend name
    compile: Any = setting(
        False, "true, false or a torch.compile backend name", lambda v, c: isinstance(v, bool | str)
    )
    cudnn_benchmark: bool = setting(True, "true or false", boolean)  # off when deterministic
    # auto: the optimizer's fused kernel where this torch has one (CUDA; CPU)
    fused_optimizer: Any = setting("auto", "auto, true or false", one_of("auto", True, False))
    grad_clip_norm: float | None = setting(
        1.0, "a number > 0, or null (no clipping)", number(above=0, null=True)
    )
    # Loss and learning rate reach the loggers (and the host) this often.
    log_every_n_steps: int = setting(10, "an integer >= 1", integer(1))
    # N > 0: train and validate on the same first N training batches, without augmentation, at
    # the optimizer's lr (constant, no warm-up): "can the model overfit N batches?"
    overfit_batches: int = setting(0, "an integer >= 0", integer(0))
    limit_train_batches: int | None = setting(  # cap the batches of an epoch (debugging)
        None, "an integer >= 1, or null", integer(1, null=True)
    )
    limit_val_batches: int | None = setting(None, "an integer >= 1, or null", integer(1, null=True))
    # image / ground truth / prediction rows in TensorBoard each epoch, spread over the val pass
    num_preview_images: int = setting(4, "an integer >= 0", integer(0))
    deterministic: bool = setting(False, "true or false", boolean)
    keep_every: int = setting(0, "an integer >= 0", integer(0))  # N > 0: epoch_NNNN.pt every N
    # torch.autograd anomaly detection: slow; names the operation that produced a NaN
    detect_anomaly: bool = setting(False, "true or false", boolean)
    sync_bn: bool = setting(False, "true or false", boolean)  # under torchrun: BatchNorm over all
    # Under torchrun: seconds a collective waits for the other processes before this one stops
    # (a node that died is noticed at once; one that lost power or its network, only then).
    distributed_timeout_s: int = setting(1800, "an integer >= 1 (seconds)", integer(1))
    # N > 1: N batches per optimizer step (the gradient of one N x bigger batch)
    accumulate_grad_batches: int = setting(1, "an integer >= 1", integer(1))
    # The resolved config as a tree, with run folder and device, when a run starts.
    print_config: bool = setting(True, "true or false", boolean)
    # The final test pass's predictions as class-index PNGs (predictions/test/): what the sweep
    # report's gallery shows (image / truth / baseline / variant); docs/sweeps.md has the cost.
    save_test_predictions: bool = setting(True, "true or false", boolean)
    early_stopping: EarlyStoppingSettings = field(default_factory=EarlyStoppingSettings)
    ema: EmaSettings = field(default_factory=EmaSettings)

    def __post_init__(self) -> None:
        _check_fields(self)
        if self.epochs is None and self.time_budget is None and self.max_steps is None:
            raise SegexpError(
                "trainer.epochs, trainer.max_steps and trainer.time_budget are all null: give "
                "the run a length, e.g. trainer.epochs=20 or trainer.time_budget=10min"
            )

    @property
    def budget_seconds(self) -> float | None:
        return duration_seconds(self.time_budget)

    @property
    def plan(self) -> list[list[int]] | None:
        """``max_steps`` as [[from_step, total_steps], ...], or None."""
        return step_plan(self.max_steps)


def trainer_settings(node: DictConfig | dict | None) -> TrainerSettings:
    """The ``trainer`` node (composed, or stored in a checkpoint) as a checked TrainerSettings;
    an absent key takes its default, an unknown one or a value out of range is a SegexpError."""
    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    try:
        merged = OmegaConf.merge(
            OmegaConf.structured(TrainerSettings), upgrade_trainer(values or {})
        )
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        key = ".".join(["trainer", *filter(None, [getattr(err, "full_key", None)])])
        raise SegexpError(
            f"{key}: {str(err.msg).splitlines()[0]} (the trainer's settings and their types: "
            "segexp/config/trainer.py)"
        ) from None


ConfigStore.instance().store(group="trainer", name="settings", node=TrainerSettings)
