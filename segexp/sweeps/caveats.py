"""What a sweep report must warn about before anyone reads its numbers as a conclusion."""

import math
from pathlib import Path

from omegaconf import OmegaConf

from segexp.config.trainer import trainer_settings
from segexp.sweeps.jobs import Job, Variant
from segexp.sweeps.paired import Comparison

MIN_SEEDS = 3
LIMITS = ("limit_train_batches", "limit_val_batches", "overfit_batches")


def shortcuts(job: Job) -> list[str]:
    """How a job cut its training short: the debug preset, batch limits, overfitting batches."""
    found = []
    if job.summary.get("choices", {}).get("trainer") == "debug":
        found.append("trainer=debug")
    config = _config(job.path)
    if config is None:
        return found
    trainer = trainer_settings(config.get("trainer"))
    for key in LIMITS:
        value = getattr(trainer, key)
        if value:  # null / 0: no limit
            found.append(f"trainer.{key}={value}")
    return found


def _config(path: Path):
    for name in ("resolved_config.yaml", ".hydra/config.yaml"):
        if (path / name).is_file():
            return OmegaConf.load(path / name)
    return None


def caveats(variants: list[Variant], comparisons: list[Comparison]) -> list[str]:
    """One markdown bullet per problem; empty when there is nothing to warn about."""
    lines = []
    few = [v for v in variants if len(v.completed) < MIN_SEEDS]
    if few:
        listed = ", ".join(f"`{v.label}` ({len(v.completed)})" for v in few)
        lines.append(
            f"- **Fewer than {MIN_SEEDS} completed seeds**: {listed}. A standard deviation "
            "from 2 values is little more than a guess; run more seeds before concluding."
        )
    cut: dict[tuple[str, ...], list[str]] = {}  # the same shortcuts -> the jobs that took them
    for variant in variants:
        for job in variant.completed:
            found = tuple(shortcuts(job))
            if found:
                cut.setdefault(found, []).append(job.name)
    for found, names in cut.items():
        lines.append(
            f"- **Shortened training** (`{' '.join(found)}`) in job(s) {', '.join(names)}: a "
            "smoke test, not an experiment; the models may be barely trained and their "
            "differences say nothing about the factor."
        )
    for c in comparisons:
        spread = c.seed_std
        if not math.isnan(spread) and abs(c.diff) < spread:
            lines.append(
                f"- **{c.factor}={c.value} vs {c.baseline}** (`{c.held}`): the difference "
                f"{c.diff:+.4f} is smaller than its seed-to-seed spread (std {spread:.4f}): "
                "another set of seeds could reverse it."
            )
    return lines
