"""The comparison report: report.md, report.csv, report.png, calibration.png and gallery/.

Written into a multirun folder at the end of every multirun (sweeps/callback.py); ``segexp-report
sweep=<folder>`` (segexp/report.py) regenerates it, also for a sweep that is still running or was
interrupted, and ``segexp-report runs=[...] baseline=...`` writes one for any finished runs
(sweeps/runs.py). Before anything is written, the protocol guard (sweeps/protocol.py) checks
that the runs it pairs were scored the same way.
"""

import math
from pathlib import Path
from typing import Any

import numpy as np

from segexp.evaluation.outputs import reliability_figure
from segexp.storage.files import atomic_write
from segexp.sweeps import protocol
from segexp.sweeps.adaptive import read_decisions
from segexp.sweeps.caveats import caveats, timings_comparable
from segexp.sweeps.gallery import write_gallery
from segexp.sweeps.jobs import (
    Job,
    Variant,
    common_overrides,
    group_variants,
    load_jobs,
    override_key,
)
from segexp.sweeps.page import markdown
from segexp.sweeps.paired import Comparison, compare
from segexp.sweeps.table import class_names_of, number, rank_trials, variant_rows, write_csv
from segexp.training.loggers.hparams import hparam_name, override_value, write_experiment


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
    with atomic_write(path, "wb") as f:  # processes of a shared study may write it together
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
        values = np.array([[number(v) for v in t["reliability"][key]] for t in found])
        weighted = np.nansum(np.nan_to_num(values) * counts, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(counts.sum(axis=0) > 0, weighted / counts.sum(axis=0), np.nan)
        pooled[key] = [None if math.isnan(v) else float(v) for v in mean]
    return pooled


def write_calibration_plot(variants: list[Variant], path: Path) -> None:
    curves = {v.label: curve for v in variants if (curve := pooled_reliability(v.completed))}
    if curves:
        figure = reliability_figure(curves, "test reliability (pooled over seeds)")
        with atomic_write(path, "wb") as f:
            figure.savefig(f, format="png", dpi=110)


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
    class_names = class_names_of(completed)
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
    with atomic_write(folder / "report.md") as f:
        f.write(page)
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
