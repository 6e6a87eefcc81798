"""Sweep report: report.md, report.csv and report.png in a multirun folder.

Written automatically at the end of every multirun (sweeps/callback.py); ``segexp-report
sweep=<folder>`` (segexp/report.py) regenerates it, also for a sweep that is still running or was
interrupted.
"""

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from segexp.storage.files import atomic_write
from segexp.sweeps.caveats import caveats
from segexp.sweeps.jobs import (
    Job,
    Variant,
    common_overrides,
    group_variants,
    load_jobs,
    override_key,
)
from segexp.sweeps.paired import Comparison, compare
from segexp.training.loggers.hparams import hparam_name, override_value, write_experiment

# (column, where in summary.json)
SCALARS = [
    (f"{split}_{key}", (split, key))
    for split in ("val", "test")
    for key in ("mIoU", "mDice", "pixel_acc", "mBF1")
] + [
    ("train_time_s", ("train_time_s",)),
    ("images_per_s", ("images_per_s",)),
    ("steps", ("steps",)),  # optimizer steps: what a time budget gave each job
]


def _get(summary: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = summary
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return float("nan") if value is None else float(value)


def _class_names(jobs: list[Job]) -> list[str]:
    names: dict[str, None] = {}
    for job in jobs:
        names.update(dict.fromkeys(job.summary.get("test", {}).get("per_class_iou", {})))
    return list(names)


def _columns(class_names: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    per_class = [
        (f"{split}_iou_{name}", (split, "per_class_iou", name))
        for split in ("val", "test")
        for name in class_names
    ]
    return SCALARS + per_class


def _mean_std(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return float("nan"), float("nan")
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else float("nan")
    return float(np.mean(finite)), std


def variant_rows(variants: list[Variant], class_names: list[str]) -> list[dict[str, Any]]:
    """One dict per variant: seeds, failed, then <column>_mean and <column>_std."""
    rows = []
    for variant in variants:
        done = variant.completed
        row: dict[str, Any] = {
            "variant": variant.label,
            "seeds": len(done),
            "failed": sum(job.status != "completed" for job in variant.jobs),
        }
        for column, path in _columns(class_names):
            mean, std = _mean_std([_get(job.summary, path) for job in done])
            row[f"{column}_mean"], row[f"{column}_std"] = mean, std
        rows.append(row)
    return rows


def _pm(row: dict[str, Any], column: str, digits: int = 3) -> str:
    mean, std = row[f"{column}_mean"], row[f"{column}_std"]
    if math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _budget_lines(jobs: list[Job]) -> list[str]:
    """What length each job had: the time budget every job got, and what stopped each."""
    done = [job.summary for job in jobs if job.status == "completed"]
    budgets = sorted({s["time_budget_s"] for s in done if s.get("time_budget_s")})
    if not budgets:
        return []
    stops: dict[str, int] = {}
    for summary in done:
        stops[summary.get("stopped_by", "?")] = stops.get(summary.get("stopped_by", "?"), 0) + 1
    stopped = ", ".join(f"{reason} {n}" for reason, n in sorted(stops.items()))
    given = " / ".join(f"{b:g} s" for b in budgets)
    return [f"Each job's time budget: {given} (stopped by: {stopped}).", ""]


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(cells) + " |" for cells in lines]


def _signed(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:+.4f}"


def _interval(low: float, high: float) -> str:
    return "-" if math.isnan(low) else f"[{_signed(low)}, {_signed(high)}]"


def markdown(
    sweep_dir: Path,
    jobs: list[Job],
    common: list[str],
    rows: list[dict[str, Any]],
    class_names: list[str],
    comparisons: list[Comparison],
    warnings: list[str] | None = None,
) -> str:
    counts = {s: sum(j.status == s for j in jobs) for s in ("completed", "failed", "interrupted")}
    unfinished = len(jobs) - sum(counts.values())
    lines = [
        f"# Sweep report: {sweep_dir}",
        "",
        f"{len(jobs)} jobs: {counts['completed']} completed, {counts['failed']} failed, "
        f"{counts['interrupted']} interrupted, {unfinished} without summary.json "
        "(running or killed). Mean ± sample standard deviation (ddof=1) over seeds (no ± with "
        "one seed); val at each run's best epoch, test with its weights. mBF1: boundary F1.",
        "",
        f"Overrides common to all jobs: `{' '.join(common) or 'none'}`",
        "",
        *_budget_lines(jobs),
    ]
    if warnings:
        lines += ["## Read with care", "", *warnings, ""]
    lines += ["## Variants", ""]
    lines += _table(
        ["variant", "seeds", "val mIoU", "val mDice", "val pixel acc", "val mBF1", "test mIoU",
         "test mDice", "test pixel acc", "test mBF1", "train time (s)", "images/s", "steps"],
        [
            [f"`{r['variant']}`", str(r["seeds"])]
            + [_pm(r, c) for c, _ in SCALARS[:8]]
            + [_pm(r, "train_time_s", 1), _pm(r, "images_per_s", 1), _pm(r, "steps", 0)]
            for r in rows
        ],
    )  # fmt: skip
    for split in ("test", "val"):
        lines += ["", f"## Per-class IoU ({split})", ""]
        lines += _table(
            ["variant", *class_names],
            [
                [f"`{r['variant']}`"] + [_pm(r, f"{split}_iou_{n}") for n in class_names]
                for r in rows
            ],
        )
    lines += [
        "",
        "## Paired differences in test mIoU",
        "",
        "Each value of a factor against the factor's first value, all other overrides held "
        "equal, averaged over the seeds both ran. **95% CI**: hierarchical bootstrap (2000 "
        "resamples: the seeds with replacement, then the test images of each drawn seed, the "
        "same images for both runs), so it covers both seed-to-seed and test-set variation. "
        "**t over seeds**: mean ± t · s/√k over the per-seed differences (seed variation only; "
        "needs 2 seeds). **images only**: the bootstrap over test images with the seeds held "
        "fixed. **seed std**: sample std (ddof=1) of the per-seed differences.",
        "",
    ]
    if comparisons:
        lines += _table(
            ["factor", "held equal", "baseline", "value", "seeds", "Δ test mIoU", "seed std",
             "95% CI (seeds + images)", "95% t over seeds", "95% images only"],
            [
                [c.factor, f"`{c.held}`", c.baseline, c.value, ",".join(c.seeds),
                 _signed(c.diff), "-" if math.isnan(c.seed_std) else f"{c.seed_std:.4f}",
                 _interval(c.ci_low, c.ci_high), _interval(c.t_low, c.t_high),
                 _interval(c.images_low, c.images_high)]
                for c in comparisons
            ],
        )  # fmt: skip
    else:
        lines.append("No factor takes two values with the other overrides held equal.")
    problems = [job for job in jobs if job.status != "completed"]
    if problems:
        lines += ["", "## Jobs that did not complete", ""]
        lines += [
            f"- `{job.name}` ({' '.join(job.overrides) or 'no overrides'}): {job.status}: "
            f"{job.reason}"
            for job in problems
        ]
    return "\n".join(lines) + "\n"


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with atomic_write(path) as f:  # processes of a shared study may write it at the same time
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v
                             for k, v in row.items()})  # fmt: skip


def plot(rows: list[dict[str, Any]], class_names: list[str], path: Path) -> None:
    """Test mIoU per variant, and per-class test IoU per variant, with standard deviations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def values(column: str) -> tuple[np.ndarray, np.ndarray]:
        means = np.array([r[f"{column}_mean"] for r in rows], dtype=float)
        stds = np.nan_to_num(np.array([r[f"{column}_std"] for r in rows], dtype=float))
        return means, stds

    labels = [r["variant"] for r in rows]
    x = np.arange(len(rows))
    width = max(6.0, 1.2 * len(rows) + 0.6 * len(class_names))
    fig, (left, right) = plt.subplots(1, 2, figsize=(width, 4.5), constrained_layout=True)
    means, stds = values("test_mIoU")
    left.bar(x, means, yerr=stds, capsize=4, color="tab:blue")
    left.set_title("test mIoU (mean ± sample std over seeds)")
    left.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    left.set_ylim(0, 1)
    bar = 0.8 / max(len(rows), 1)
    classes = np.arange(len(class_names))
    for i, (row, label) in enumerate(zip(rows, labels, strict=True)):
        means = np.array([row[f"test_iou_{n}_mean"] for n in class_names], dtype=float)
        stds = np.nan_to_num(np.array([row[f"test_iou_{n}_std"] for n in class_names], float))
        right.bar(classes + i * bar, means, bar, yerr=stds, capsize=2, label=label)
    right.set_title("test IoU per class")
    right.set_xticks(classes + bar * (len(rows) - 1) / 2, class_names, rotation=30, ha="right")
    right.set_ylim(0, 1)
    # Below the axes, so that long variant names are never cut off or drawn over the bars.
    right.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def is_search(sweep_dir: Path) -> bool:
    """An Optuna search (its trials are ranked by the objective, not compared pairwise); also
    a folder that gathers the sweep folders of one study's processes (one per machine)."""
    for folder in [sweep_dir, *(p for p in sweep_dir.iterdir() if p.is_dir())]:
        if (folder / "optimization_results.yaml").is_file():
            return True
        multirun = folder / "multirun.yaml"
        if multirun.is_file() and "optuna" in multirun.read_text():
            return True
    return False


def rank_trials(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trials sorted by val mIoU (the objective Optuna maximises), the best marked."""
    ranked = sorted(
        rows,
        key=lambda r: -r["val_mIoU_mean"] if not math.isnan(r["val_mIoU_mean"]) else math.inf,
    )
    if ranked and not math.isnan(ranked[0]["val_mIoU_mean"]):
        ranked[0] = {**ranked[0], "variant": f"{ranked[0]['variant']} (best)"}
    return ranked


def write_report(sweep_dir: Path, replicates: int = 2000) -> list[Job]:
    """Writes the three files; returns the jobs (so callers can list the failures)."""
    sweep_dir = Path(sweep_dir)
    jobs = load_jobs(sweep_dir)
    variants = group_variants(jobs)
    completed = [job for job in jobs if job.status == "completed"]
    class_names = _class_names(completed)
    rows = variant_rows(variants, class_names)
    if is_search(sweep_dir):
        rows = rank_trials(rows)
    comparisons = compare(variants, replicates)
    warnings = caveats(variants, comparisons)
    with atomic_write(sweep_dir / "report.md") as f:
        f.write(
            markdown(
                sweep_dir,
                jobs,
                common_overrides(variants),
                rows,
                class_names,
                comparisons,
                warnings,
            )
        )
    write_csv(rows, sweep_dir / "report.csv")
    if completed:
        plot(rows, class_names, sweep_dir / "report.png")
        write_experiment(sweep_dir, swept_values(completed))
    return jobs


def swept_values(jobs: list[Job]) -> dict[str, list[Any]]:
    """Each override key whose value differs between jobs, with the values it takes: the
    columns of the sweep's HParams table, named as each job's session names them."""
    by_key: dict[str, list[Any]] = {}
    for job in jobs:
        for override in job.overrides:
            name = hparam_name(override_key(override))
            by_key.setdefault(name, []).append(override_value(override))
    return {
        key: values
        for key, values in by_key.items()
        if len(values) < len(jobs) or len(set(map(repr, values))) > 1
    }


def failure_line(jobs: list[Job]) -> str:
    """One line listing the jobs that did not complete (with the overrides that tell them
    apart), or '' when all did."""
    bad = [job for job in jobs if job.status != "completed"]
    if not bad:
        return ""
    parsed = [{override_key(o): o for o in job.overrides} for job in jobs]
    keys = {k for p in parsed for k in p}
    varying = {k for k in keys if len({p.get(k) for p in parsed}) > 1}

    def label(job: Job) -> str:  # a numbered folder alone does not say what the job varies
        shown = [o for o in job.overrides if override_key(o) in varying]
        return f"{job.name} ({' '.join(shown)})" if shown and job.name.isdigit() else job.name

    items = "; ".join(f"{label(job)}: {job.reason}" for job in bad)
    return f"{len(bad)} of {len(jobs)} jobs did not complete: {items}"
