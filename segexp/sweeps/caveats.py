"""What a report must warn about before anyone reads its numbers as a conclusion: few seeds,
shortened or unconverged training, differences within the seed spread, timings taken under
different conditions."""

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


def still_improving(job: Job) -> bool:
    """The run's best val epoch is its last (of at least 2), and it did not stop early: its
    score was still rising when training ended."""
    best, ran = job.summary.get("best_epoch"), job.summary.get("epochs_run")
    return bool(best and ran and ran > 1 and best == ran and not job.summary.get("stopped_early"))


def timing_setup(job: Job) -> tuple:
    """What a job's time and images/s depend on besides the variant: device, precision, CPU
    threads and processes."""
    keys = ("device", "precision", "num_threads", "world_size")
    return tuple(job.summary.get(key) for key in keys)


def timings_comparable(jobs: list[Job]) -> bool:
    return len({timing_setup(job) for job in jobs if job.status == "completed"}) <= 1


def caveats(variants: list[Variant], comparisons: list[Comparison]) -> list[str]:
    """One markdown bullet per problem; empty when there is nothing to warn about."""
    lines = []
    done = [job for variant in variants for job in variant.completed]
    rising = [job for job in done if still_improving(job)]
    if done and 2 * len(rising) > len(done):
        lines.append(
            f"- **Not converged**: in {len(rising)} of {len(done)} jobs the best val epoch is "
            "the last one: the models were still improving when training stopped, so the "
            "comparison measures how fast each variant learns, not where it ends. Train longer "
            "(trainer.epochs) before reading it as the end point."
        )
    if not timings_comparable(done):
        setups = sorted({", ".join(f"{v}" for v in timing_setup(job)) for job in done})
        lines.append(
            "- **Timings not comparable**: the jobs ran under different conditions (device, "
            f"precision, CPU threads, processes: {'; '.join(setups)}); the time and images/s "
            "columns are left out."
        )
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
