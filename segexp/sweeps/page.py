"""report.md: the comparison report as a markdown page (sweeps/report.py writes it)."""

import math
from pathlib import Path
from typing import Any

from segexp.sweeps.gallery import Pictures
from segexp.sweeps.jobs import Job
from segexp.sweeps.paired import Comparison
from segexp.sweeps.table import SCALARS, number


def _pm(row: dict[str, Any], column: str, digits: int = 3) -> str:
    mean, std = row[f"{column}_mean"], row[f"{column}_std"]
    if math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(cells) + " |" for cells in lines]


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
             _signed(number(o["diff"])), _interval(number(o["low"]), number(o["high"]))]
            for o in record["outcomes"]
        ],
    )  # fmt: skip
    rounds = ", ".join(f"round {r['round']}: {r['jobs']} jobs in {r['seconds']:.0f} s"
                       for r in record["rounds"])  # fmt: skip
    fixed = record["fixed_seed_jobs"]
    # Priced at this sweep's own pace (round wall clock per job, with the same launcher).
    pace = sum(r["seconds"] for r in record["rounds"]) / max(record["jobs_run"], 1)
    costs = ", ".join(f"{seeds} seeds each: {jobs} jobs (about {jobs * pace:.0f} s)"
                      for seeds, jobs in fixed.items())  # fmt: skip
    lines += [
        "",
        f"Jobs run: {record['jobs_run']} ({rounds}). A fixed-seed sweep of the same variants "
        f"would have run {costs}, at this sweep's pace of {pace:.0f} s a job.",
        "",
    ]
    return lines


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
        *_budget_lines(jobs),
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
    header += ["steps"]
    lines += _table(
        header,
        [
            [f"`{r['variant']}`", str(r["seeds"])]
            + [_pm(r, c) for c, _ in SCALARS[:8]]
            + [_pm(r, "test_ece", 4)]
            + ([_pm(r, "train_time_s", 1), _pm(r, "images_per_s", 1)] if timings else [])
            + [_pm(r, "steps", 0)]
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
