"""The comparison report: report.md, report.csv, report.png, calibration.png and gallery/.

Written into a multirun folder at the end of every multirun (sweeps/callback.py); ``segexp-report
sweep=<folder>`` (segexp/report.py) regenerates it, also for a sweep that is still running or was
interrupted, and ``segexp-report runs=[...] baseline=...`` writes one for any finished runs
(sweeps/runs.py). Before anything is written, the protocol guard (sweeps/protocol.py) checks
that the runs it pairs were scored the same way.
"""

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from segexp.evaluation.outputs import reliability_figure
from segexp.sweeps import protocol
from segexp.sweeps.adaptive import read_decisions
from segexp.sweeps.caveats import caveats, timings_comparable
from segexp.sweeps.gallery import Pictures, write_gallery
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
SCALARS = (
    [
        (f"{split}_{key}", (split, key))
        for split in ("val", "test")
        for key in ("mIoU", "mDice", "pixel_acc", "mBF1")
    ]
    + [("train_time_s", ("train_time_s",)), ("images_per_s", ("images_per_s",))]
    + [("test_ece", ("test", "ece"))]
)


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


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(cells) + " |" for cells in lines]


def _signed(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:+.4f}"


def _interval(low: float, high: float) -> str:
    return "-" if math.isnan(low) else f"[{_signed(low)}, {_signed(high)}]"


def _decisions(record: dict[str, Any]) -> list[str]:
    """The adaptive sweep's verdicts, the round each was reached in and what it cost."""
    rules = record["rules"]
    lines = [
        "## Decisions (adaptive seeds)",
        "",
        f"`hydra/sweeper=segexp_decide`: {rules['first_round']} seeds per variant first, then "
        f"{rules['seeds_per_round']} more per round to each variant whose 95% interval against "
        f"the baseline `{record['baseline']}` still held 0 and reached beyond ±min_effect = "
        f"{rules['min_effect']}, up to {rules['max_seeds']} seeds. *better* / *worse*: the "
        "interval lies above / below 0; *equivalent*: within ±min_effect.",
        "",
    ]
    lines += _table(
        ["variant", "decision", "after round", "seeds", "Δ test mIoU", "95% CI (seeds + images)"],
        [
            [f"`{o['variant']}`", f"**{o['decision']}**",
             "-" if o["round"] is None else str(o["round"]), str(o["seeds"]),
             _signed(_number(o["diff"])), _interval(_number(o["low"]), _number(o["high"]))]
            for o in record["outcomes"]
        ],
    )  # fmt: skip
    rounds = ", ".join(f"round {r['round']}: {r['jobs']} jobs in {r['seconds']:.0f} s"
                       for r in record["rounds"])  # fmt: skip
    fixed = record["fixed_seed_jobs"]
    costs = ", ".join(f"{seeds} seeds each: {jobs} jobs" for seeds, jobs in fixed.items())
    lines += [
        "",
        f"Jobs run: {record['jobs_run']} ({rounds}). A fixed-seed sweep of the same variants "
        f"would have run {costs}.",
        "",
    ]
    return lines


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _gallery(comparisons: list[Comparison], pictures: list[Pictures]) -> list[str]:
    lines = [
        "## What changed",
        "",
        "Per comparison: the difference of the row-normalised test confusion matrices (variant "
        "minus baseline, mean over the seeds; the diagonal is each class's change in recall), "
        "and the test images where the variant gains and loses most (each image's own mIoU, "
        "mean over the seeds; image / truth / baseline / variant of the first shared seed).",
        "",
    ]
    for c, made in zip(comparisons, pictures, strict=True):
        lines.append(f"**{c.factor}={c.value} vs {c.baseline}** (`{c.held}`)")
        lines.append("")
        lines += [f"![{alt}]({path})" for alt, path in
                  (("confusion difference", made.confusion), ("gains and losses", made.grid))
                  if path]  # fmt: skip
        if made.note:
            lines.append(f"No gallery: {made.note}.")
        lines.append("")
    return lines


def markdown(
    sweep_dir: Path,
    jobs: list[Job],
    common: list[str],
    rows: list[dict[str, Any]],
    class_names: list[str],
    comparisons: list[Comparison],
    warnings: list[str] | None = None,
    *,
    title: str | None = None,
    decisions: dict[str, Any] | None = None,
    pictures: list[Pictures] | None = None,
    timings: bool = True,
) -> str:
    counts = {s: sum(j.status == s for j in jobs) for s in ("completed", "failed", "interrupted")}
    unfinished = len(jobs) - sum(counts.values())
    lines = [
        title or f"# Sweep report: {sweep_dir}",
        "",
        f"{len(jobs)} jobs: {counts['completed']} completed, {counts['failed']} failed, "
        f"{counts['interrupted']} interrupted, {unfinished} without summary.json "
        "(running or killed). Mean ± sample standard deviation (ddof=1) over seeds (no ± with "
        "one seed); val at each run's best epoch, test with its weights. mBF1: boundary F1; "
        "ECE: expected calibration error (15 bins, labelled pixels; lower is better).",
        "",
        f"Overrides common to all jobs: `{' '.join(common) or 'none'}`",
        "",
    ]
    if warnings:
        lines += ["## Read with care", "", *warnings, ""]
    if decisions:
        lines += _decisions(decisions)
    lines += ["## Variants", ""]
    header = ["variant", "seeds", "val mIoU", "val mDice", "val pixel acc", "val mBF1",
              "test mIoU", "test mDice", "test pixel acc", "test mBF1", "test ECE"]  # fmt: skip
    if timings:
        header += ["train time (s)", "images/s"]
    lines += _table(
        header,
        [
            [f"`{r['variant']}`", str(r["seeds"])]
            + [_pm(r, c) for c, _ in SCALARS[:8]]
            + [_pm(r, "test_ece", 4)]
            + ([_pm(r, "train_time_s", 1), _pm(r, "images_per_s", 1)] if timings else [])
            for r in rows
        ],
    )
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
        "Each variant against its baseline (in a sweep: each value of a factor against the "
        "factor's first value, all other overrides held equal), averaged over the seeds both "
        "ran, image by image on the same test images. **95% CI (seeds + images)**, the "
        "headline: the spread of the per-seed differences (k-1 degrees of freedom) plus the "
        "test set's share from per-image jackknife values, with the Behrens-Fisher quantile; "
        "it holds the true difference 95% of the time at 2 to 10 seeds (docs/sweeps.md). "
        "**t over seeds**: mean ± t · s/√k over the per-seed differences (seed variation "
        "only). **images only**: the bootstrap over test images (2000 resamples) with the "
        "seeds held fixed. **seed std**: sample std (ddof=1) of the per-seed differences.",
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
    if any(not math.isnan(c.ece_diff) for c in comparisons):
        lines += [
            "",
            "## Paired differences in calibration (test ECE)",
            "",
            "Expected calibration error, variant minus baseline (negative: better calibrated), "
            "with the same headline interval; the reliability diagram of each variant is "
            "calibration.png.",
            "",
        ]
        lines += _table(
            ["factor", "held equal", "baseline", "value", "Δ test ECE", "95% CI (seeds + images)"],
            [[c.factor, f"`{c.held}`", c.baseline, c.value, _signed(c.ece_diff),
              _interval(c.ece_low, c.ece_high)] for c in comparisons],
        )  # fmt: skip
    if pictures:
        lines += ["", *_gallery(comparisons, pictures)]
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
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v
                             for k, v in row.items()})  # fmt: skip
    tmp.replace(path)


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
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)


def is_search(sweep_dir: Path) -> bool:
    """An Optuna search (its trials are ranked by the objective, not compared pairwise)."""
    if (sweep_dir / "optimization_results.yaml").is_file():
        return True
    multirun = sweep_dir / "multirun.yaml"
    return multirun.is_file() and "optuna" in multirun.read_text()


def rank_trials(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trials sorted by val mIoU (the objective Optuna maximises), the best marked."""
    ranked = sorted(
        rows,
        key=lambda r: -r["val_mIoU_mean"] if not math.isnan(r["val_mIoU_mean"]) else math.inf,
    )
    if ranked and not math.isnan(ranked[0]["val_mIoU_mean"]):
        ranked[0] = {**ranked[0], "variant": f"{ranked[0]['variant']} (best)"}
    return ranked


def pooled_reliability(jobs: list[Job]) -> dict[str, Any] | None:
    """A variant's reliability bins over its seeds (counts summed, confidence and accuracy
    weighted by them), with the mean ECE; None when no job recorded them."""
    found = [job.summary.get("test", {}) for job in jobs]
    found = [t for t in found if t.get("reliability")]
    if not found:
        return None
    counts = np.array([t["reliability"]["count"] for t in found], float)
    pooled = {
        "count": counts.sum(axis=0).tolist(),
        "ece": float(np.mean([t["ece"] for t in found])),
    }
    for key in ("confidence", "accuracy"):
        values = np.array([[_number(v) for v in t["reliability"][key]] for t in found])
        weighted = np.nansum(np.nan_to_num(values) * counts, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(counts.sum(axis=0) > 0, weighted / counts.sum(axis=0), np.nan)
        pooled[key] = [None if math.isnan(v) else float(v) for v in mean]
    return pooled


def write_calibration_plot(variants: list[Variant], path: Path) -> None:
    curves = {v.label: curve for v in variants if (curve := pooled_reliability(v.completed))}
    if curves:
        figure = reliability_figure(curves, "test reliability (pooled over seeds)")
        tmp = path.with_name(f".{path.name}.tmp.png")
        figure.savefig(tmp, dpi=110)
        tmp.replace(path)


def write(
    folder: Path,
    jobs: list[Job],
    variants: list[Variant],
    comparisons: list[Comparison],
    *,
    sweep: bool,
    allow_protocol_mismatch: bool = False,
    title: str | None = None,
    ranked: bool = False,
) -> list[Job]:
    """The report of ``jobs`` grouped into ``variants`` and paired as ``comparisons``, into
    ``folder``; nothing is written when the protocol guard refuses a pair."""
    notes = protocol.check(comparisons, sweep=sweep, allow=allow_protocol_mismatch)
    folder.mkdir(parents=True, exist_ok=True)
    completed = [job for job in jobs if job.status == "completed"]
    class_names = _class_names(completed)
    rows = variant_rows(variants, class_names)
    if ranked:
        rows = rank_trials(rows)
    warnings = [*notes, *caveats(variants, comparisons)]
    pictures = write_gallery(comparisons, folder) if comparisons else None
    page = markdown(
        folder, jobs, common_overrides(variants), rows, class_names, comparisons, warnings,
        title=title, decisions=read_decisions(folder) if sweep else None, pictures=pictures,
        timings=timings_comparable(completed),
    )  # fmt: skip
    (folder / "report.md").write_text(page)
    write_csv(rows, folder / "report.csv")
    if completed:
        plot(rows, class_names, folder / "report.png")
        write_calibration_plot(variants, folder / "calibration.png")
        if sweep:
            write_experiment(folder, swept_values(completed))
    return jobs


def write_report(
    sweep_dir: Path, replicates: int = 2000, allow_protocol_mismatch: bool = False
) -> list[Job]:
    """The report of a multirun folder; returns the jobs (so callers can list the failures)."""
    sweep_dir = Path(sweep_dir)
    jobs = load_jobs(sweep_dir)
    variants = group_variants(jobs)
    comparisons = compare(variants, replicates)
    return write(
        sweep_dir, jobs, variants, comparisons, sweep=True,
        allow_protocol_mismatch=allow_protocol_mismatch, ranked=is_search(sweep_dir),
    )  # fmt: skip


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
