"""Exact resume: everything a checkpoint holds besides the weights, and putting it back.

A checkpoint is written at the end of every epoch. It carries the optimizer, scheduler and AMP
scaler states, the counters, the best metric so far and every random stream (Python, NumPy,
torch, CUDA, the DataLoader generators and the augmentation pipeline's stream), so that a run
resumed from ``last.pt`` repeats exactly what the uninterrupted run would have done next.

Where that cannot hold (the augmentation changed or runs in worker processes, another device or
thread count), the resume says so in one warning and the run records it: summary.json's
``exact_resume`` is false and ``inexact_resume`` says why. Only public APIs are used to put state
back (``load_state_dict``, albumentations' ``set_random_state``, generators' ``set_state``).
"""

import hashlib
import logging
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.utils.data import DataLoader

import segexp
from segexp.config.legacy import upgrade
from segexp.config.trainer import trainer_settings
from segexp.errors import SegexpError
from segexp.runtime import distributed
from segexp.storage.checkpoint import last_checkpoint, load_checkpoint, save_checkpoint

if TYPE_CHECKING:
    from segexp.training.experiment import Experiment

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Counters that survive a restart; ``epoch`` is the number of completed epochs."""

    epoch: int = 0
    global_step: int = 0
    best_miou: float = -1.0
    best_epoch: int = 0
    best_val: dict[str, Any] = field(default_factory=dict)
    images_seen: int = 0
    train_seconds: float = 0.0
    elapsed_seconds: float = 0.0  # wall clock of earlier sessions, up to their last checkpoint
    early_stopping: dict[str, Any] = field(default_factory=dict)  # training/early_stopping.py
    # Why a resume of this run was not exact (summary.json "exact_resume" is true when empty).
    inexact_resume: list[str] = field(default_factory=list)
    step_plan: list[list[int]] = field(default_factory=list)  # training/budget.py's decisions


def _loaders(splits) -> dict[str, DataLoader]:
    return {
        name: loader
        for name in ("train", "val", "test")
        if isinstance(loader := getattr(splits, name), DataLoader) and loader.generator is not None
    }


def _fingerprint(transform: Any) -> str:
    """Which pipeline a random state belongs to: albumentations' repr lists every transform and
    its parameters."""
    return hashlib.sha256(repr(transform).encode()).hexdigest()[:16]


def _augmentation_state(transform: Any) -> dict[str, Any] | None:
    """The pipeline's one random stream (data/loaders.py seed_transform), or None."""
    if transform is None or not hasattr(transform, "set_random_state"):
        return None
    return {
        "pipeline": _fingerprint(transform),
        "numpy": transform.random_generator.bit_generator.state,
        "python": transform.py_random.getstate(),
    }


def _restore_augmentation(saved: Any, transform: Any) -> list[str]:
    """Put the pipeline's stream back; what could not be restored, as reasons."""
    current = _augmentation_state(transform)
    if saved is None and current is None:
        return []
    if not isinstance(saved, dict) or current is None or saved["pipeline"] != current["pipeline"]:
        return [
            "the training augmentation (aug.train, dataset.resize) differs from the one last.pt "
            "was written with, so its random stream starts afresh"
        ]
    numpy_generator = np.random.default_rng()
    numpy_generator.bit_generator.state = saved["numpy"]
    python_random = random.Random()
    python_random.setstate(_as_tuple(saved["python"]))
    transform.set_random_state(numpy_generator, python_random)
    return []


def capture_rng(exp: "Experiment") -> dict[str, Any]:
    """Every random stream as tensors and plain containers (loadable with weights_only)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loaders": {name: dl.generator.get_state() for name, dl in _loaders(exp.splits).items()},
        "augmentation": _augmentation_state(exp.splits.augmentation),
        **({} if exp.device_aug is None else {"device_aug": exp.device_aug.state()}),
    }


def restore_rng(state: dict[str, Any], exp: "Experiment") -> list[str]:
    """Every random stream back as ``capture_rng`` saw it; what could not be, as reasons."""
    random.setstate(_as_tuple(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    reasons = []
    for name, loader in _loaders(exp.splits).items():
        if name in state["loaders"]:
            loader.generator.set_state(state["loaders"][name])
        else:
            reasons.append(f"last.pt holds no random state of the {name} loader")
    reasons += _restore_augmentation(state.get("augmentation"), exp.splits.augmentation)
    if exp.device_aug is not None:
        if "device_aug" in state:
            exp.device_aug.set_state(state["device_aug"])
        else:
            reasons.append("aug.device was off when last.pt was written")
    workers = getattr(exp.splits.train, "num_workers", 0)
    if workers and exp.splits.augmentation is not None:
        reasons.append(
            f"dataset.num_workers={workers}: the augmentation's random streams live in the "
            "loader's worker processes, which no checkpoint holds (dataset.num_workers=0 "
            "resumes exactly)"
        )
    return reasons


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list | tuple) else value


def training_state(exp: "Experiment", progress: Progress) -> dict[str, Any]:
    """The one checkpoint dict (see the README's "A run folder"). With trainer.ema, ``model``
    holds the averaged weights (what inference uses) and ``ema`` the training weights."""
    weights = exp.model if exp.ema is None else exp.ema.module
    return {
        "model": weights.state_dict(),
        **({} if exp.ema is None else {"ema": exp.ema.state_dict()}),
        "optimizer": exp.optimizer.state_dict(),
        "scheduler": exp.scheduler.state_dict(),
        "scaler": exp.scaler.state_dict(),
        "epoch": progress.epoch,
        "global_step": progress.global_step,
        "best_miou": progress.best_miou,
        "progress": asdict(progress),
        "rng": capture_rng(exp),
        "config": OmegaConf.to_container(exp.cfg, resolve=True),
        "segexp_version": segexp.__version__,
        "device": str(exp.dev.device),
        "num_threads": torch.get_num_threads(),
    }


def save_epoch(state: dict[str, Any], folder: Path, *, improved: bool, keep_every: int) -> None:
    """last.pt always; best.pt when the metric improved and epoch_NNNN.pt every ``keep_every``
    epochs as links to (or copies of) it: one serialisation per epoch."""
    copies = [folder / "best.pt"] if improved else []
    if keep_every and state["epoch"] % keep_every == 0:
        copies.append(folder / f"epoch_{state['epoch']:04d}.pt")
    last = folder / "last.pt"
    try:
        save_checkpoint(state, last, copies)
    except SegexpError as err:  # a full disk, a read-only folder: what is kept, and what next
        if not last.is_file():
            raise
        raise SegexpError(
            f"{err}: {resume_command(folder.parent)} (last.pt of epoch {state['epoch'] - 1} "
            "is intact)"
        ) from None


def restore(path: Path, exp: "Experiment") -> Progress:
    """Start from scratch, or from ``path`` (last.pt) when it exists: weights, states, RNG."""
    if not path.is_file():
        _remove_leftovers(path.parent)
        return Progress()
    state = load_checkpoint(path, exp.dev.device)
    configured = [(g["initial_lr"], g.get("weight_decay")) for g in exp.optimizer.param_groups]
    try:
        ema = state.get("ema")
        exp.model.load_state_dict(state["model"] if ema is None else ema["training_weights"])
        if exp.ema is not None:  # turned on at resume: the average starts from these weights
            exp.ema.load(state["model"], None if ema is None else ema["n_averaged"])
        exp.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise SegexpError(
            f"{path} was written by a different model or optimizer config and cannot be resumed "
            f"({str(err).strip().splitlines()[0]}): use a new run folder, or resume=<run folder> "
            "to continue that run with its own config"
        ) from None
    exp.scheduler.load_state_dict(state["scheduler"])
    apply_hyperparameters(exp.optimizer, exp.scheduler, configured)
    exp.scaler.load_state_dict(state["scaler"])
    progress = Progress(**state["progress"])
    reasons = restore_rng(state["rng"], exp) + _machine_changes(state, exp)
    _remove_leftovers(path.parent)  # only now: a refused checkpoint leaves the folder as it was
    log.info("resuming from %s: epoch %d done, step %d", path, progress.epoch, progress.global_step)
    if reasons:
        log.warning("this resume is not exact: %s", "; ".join(reasons))
        progress.inexact_resume += [f"epoch {progress.epoch}: {r}" for r in reasons]
    return progress


def _machine_changes(state: dict[str, Any], exp: "Experiment") -> list[str]:
    """Differences in where the numbers are computed (checkpoints since this version say)."""
    reasons = []
    device, threads = state.get("device"), state.get("num_threads")
    # Another kind of device; another GPU of one machine (trainer.device=auto takes a free
    # one, runtime/device_pool.py) computes the same.
    if device is not None and torch.device(device).type != exp.dev.device.type:
        reasons.append(f"last.pt was written on {device}, this session runs on {exp.dev.device}")
    elif exp.dev.device.type == "cpu" and threads not in (None, torch.get_num_threads()):
        reasons.append(
            f"{threads} CPU threads wrote last.pt, {torch.get_num_threads()} continue "
            "(sums can round differently; trainer.num_threads fixes the count)"
        )
    return reasons


def _remove_leftovers(folder: Path) -> None:
    for stale in folder.glob(".*.pt.*.tmp"):  # left by a kill during save_checkpoint
        stale.unlink(missing_ok=True)


def apply_hyperparameters(optimizer, scheduler, configured: list[tuple[float, Any]]) -> None:
    """The configured learning rate and weight decay, over the ones a restored optimizer and
    scheduler state bring back (a changed ``optimizer.lr`` on resume takes effect; unchanged
    values give the same numbers, so an exact resume stays exact)."""
    for i, (group, (base, decay)) in enumerate(
        zip(optimizer.param_groups, configured, strict=True)
    ):
        if decay is not None:
            group["weight_decay"] = decay
        old = group.get("initial_lr")
        if old != base:
            group["initial_lr"] = base
            scheduler.base_lrs[i] = base
            lambdas = getattr(scheduler, "lr_lambdas", None)  # LambdaLR: every segexp schedule
            factor = lambdas[i](scheduler.last_epoch) if lambdas else group["lr"] / (old or base)
            group["lr"] = base * factor


# --- `python -m segexp resume=<run folder>` ------------------------------------------------


def resume_command(run_dir: Path) -> str:
    if distributed.launched_by_torchrun():
        return f"the same torchrun command with resume={run_dir}, on every node"
    return f"python -m segexp resume={run_dir}"


# The keys a resumed run may change: each one takes effect from the next step on (the learning
# rate and weight decay through ``apply_hyperparameters``). Any other changed key would make the
# continued run a different experiment than its record says, and is refused.
RESUMABLE = (
    "trainer.epochs",
    "optimizer.lr",
    "optimizer.weight_decay",
    "trainer.grad_clip_norm",
    "trainer.log_every_n_steps",
    "trainer.num_preview_images",
    "trainer.keep_every",
    "trainer.limit_val_batches",
    "trainer.device",
    "dataset.num_workers",
)


def _overrides(folder: Path) -> list[str]:
    return [str(o) for o in OmegaConf.load(folder / "overrides.yaml")]


def _saved_run_info(run_dir: Path) -> dict[str, Any] | None:
    """The first run's overrides and choices, and each accepted resume's overrides, from the
    records Hydra kept in .hydra/ (a refused resume leaves none: runtime/run_folder.py)."""
    hydra_dir = run_dir / ".hydra"
    if not ((hydra_dir / "overrides.yaml").is_file() and (hydra_dir / "hydra.yaml").is_file()):
        return None
    choices = OmegaConf.load(hydra_dir / "hydra.yaml").hydra.runtime.choices
    resumes = [
        [o for o in _overrides(sub) if not o.startswith("resume=")]
        for sub in sorted(hydra_dir.glob("resume_*"))
        if (sub / "overrides.yaml").is_file()
    ]
    return {
        "overrides": _overrides(hydra_dir),
        "choices": {k: v for k, v in choices.items() if not k.startswith("hydra")},
        "resumes": resumes,
    }


def _refuse(override: str, key: str, choices: dict) -> None:
    if key in choices:
        raise SegexpError(
            f"{override}: a resumed run keeps its {key}; start a new run to change it "
            f"(keys that can change on resume: {', '.join(RESUMABLE)})"
        )
    if key not in RESUMABLE:
        raise SegexpError(
            f"{override}: {key} cannot change on resume (the checkpoint was trained with its "
            f"own value); start a new run, or change only {', '.join(RESUMABLE)}"
        )


def resume_config(
    cfg: DictConfig, info: dict[str, Any], run_dir: Path | None = None
) -> tuple[DictConfig, dict[str, Any]]:
    """The resumed run's own config (from its last.pt), with the keys of ``RESUMABLE`` given now
    (e.g. trainer.epochs=20) applied on top; any other change is refused."""
    last = last_checkpoint(str(cfg.resume))
    if not last.is_file():
        raise SegexpError(
            f"resume={cfg.resume}: {last} does not exist; give a run folder in which at least "
            "one epoch finished (outputs/runs/<date>/<time>_<name>)"
        )
    # Under torchrun the other ranks run in a scratch folder (distributed.hydra_overrides): only
    # rank 0 writes the run folder.
    elsewhere = run_dir is not None and Path(run_dir).resolve() != last.parent.parent.resolve()
    if elsewhere and distributed.is_main():
        raise SegexpError(
            f"resume={cfg.resume} continues in that folder, but hydra.run.dir={run_dir}: "
            "drop the hydra.run.dir override"
        )
    state = load_checkpoint(last)
    saved = OmegaConf.create(upgrade(state["config"]))
    changed = [o for o in info["overrides"] if not o.startswith("resume=")]
    for override in changed:
        key = override.lstrip("+~").split("=", 1)[0]
        _refuse(override, key, info["choices"])
        value = OmegaConf.select(cfg, key)
        if isinstance(value, DictConfig | ListConfig):
            value = OmegaConf.to_container(value, resolve=True)
        OmegaConf.update(saved, key, value, merge=False, force_add=True)
    done, epochs = int(state.get("epoch", 0)), trainer_settings(saved.trainer).epochs
    if epochs < done:
        raise SegexpError(
            f"trainer.epochs={epochs} but {done} epochs of {cfg.resume} are already "
            f"trained: give trainer.epochs={done} or more"
        )
    saved.resume = None
    original = _saved_run_info(last.parent.parent) or {**info, "overrides": [], "resumes": []}
    resumes = original["resumes"]
    if not resumes or resumes[-1] != changed:  # this resume, when Hydra has not recorded it
        resumes = [*resumes, changed]
    return saved, {
        "overrides": original["overrides"],
        "resumes": resumes,
        "choices": original["choices"],
    }
