"""Any finished runs compared: ``segexp-report runs=[<run or sweep folder>, ...] baseline=<one>``.

Each entry is a run folder (its summary.json says completed) or a sweep folder (its completed
jobs). The runs are grouped into variants as a sweep's jobs are, by their overrides with the
seed set aside, so last week's baseline and today's variant pair up by seed and test image like
two values of one sweep. The baseline variant is the one holding ``baseline`` (a run folder, or a
sweep folder of one variant); every other variant is compared with it, with the statistics and
pictures of a sweep report (sweeps/report.py). Every problem with the entries is found before
anything is written.
"""

from pathlib import Path

from segexp.errors import SegexpError
from segexp.sweeps.jobs import Job, Variant, group_variants, load_job, load_jobs
from segexp.sweeps.paired import compare_to, paired_counts
from segexp.sweeps.report import write

FINISHED = "a run folder whose summary.json says completed, or a sweep folder"


def runs_in(entry: str) -> list[Job]:
    """The completed runs an entry of ``runs=`` names; a SegexpError naming the entry if none."""
    path = Path(entry)
    if not path.is_dir():
        raise SegexpError(f"runs: {entry} is not a folder: give {FINISHED}")
    if (path / "summary.json").is_file():
        job = load_job(path, path.parent)
        if job.status != "completed":
            raise SegexpError(
                f"runs: {entry} is not a finished run (status {job.status}"
                f"{': ' + job.reason if job.reason else ''}): give {FINISHED}"
            )
        jobs = [job]
    elif any(path.iterdir()):
        try:
            jobs = [job for job in load_jobs(path) if job.status == "completed"]
        except SegexpError:
            jobs = []
        if not jobs:
            raise SegexpError(f"runs: {entry} holds no finished run: give {FINISHED}")
    else:
        raise SegexpError(f"runs: {entry} is empty: give {FINISHED}")
    for job in jobs:
        if not (job.path / "per_image.csv").is_file():
            raise SegexpError(
                f"runs: {job.path} has no per_image.csv (a run from before segexp kept it): "
                "its test images cannot be paired; evaluate it again or leave it out"
            )
    return jobs


def _same(path: Path, other: Path) -> bool:
    return path.resolve() == other.resolve()


def baseline_variant(
    variants: list[Variant], baseline: str, entries: dict[str, list[Job]]
) -> Variant:
    """The variant holding the run folder ``baseline``, or the one variant of a ``runs=``
    entry named ``baseline``."""
    target = Path(baseline)
    named = [jobs for entry, jobs in entries.items() if _same(Path(entry), target)]
    jobs = (
        named[0] if named else [j for js in entries.values() for j in js if _same(j.path, target)]
    )
    if not jobs:
        raise SegexpError(
            f"baseline={baseline} is not among the runs: give one of the runs= entries, or a "
            f"run folder inside one of them ({', '.join(entries)})"
        )
    holding = [v for v in variants if any(job in v.jobs for job in jobs)]
    if len(holding) > 1:
        labels = ", ".join(f"`{v.label}`" for v in holding)
        raise SegexpError(
            f"baseline={baseline} holds {len(holding)} variants ({labels}): give one run folder "
            f"of the baseline, e.g. baseline={holding[0].jobs[0].path}"
        )
    return holding[0]


def check_pairs(baseline: Variant, variants: list[Variant]) -> None:
    """Every variant shares a seed and the test images with the baseline."""
    for variant in variants:
        if variant is baseline:
            continue
        base_seeds = {job.seed for job in baseline.completed}
        seeds = {job.seed for job in variant.completed} & base_seeds
        if not seeds:
            raise SegexpError(
                f"runs: `{variant.label}` (seeds {_seeds(variant)}) shares no seed with the "
                f"baseline `{baseline.label}` (seeds {_seeds(baseline)}): pairs are made seed by "
                "seed; run the missing seeds or leave it out"
            )
        pairs = [
            (next(j for j in baseline.completed if j.seed == s),
             next(j for j in variant.completed if j.seed == s))
            for s in sorted(seeds)
        ]  # fmt: skip
        if paired_counts(pairs) is None:
            raise SegexpError(
                f"runs: `{variant.label}` and the baseline `{baseline.label}` were not scored on "
                f"the same test images (per_image.csv of {pairs[0][1].path} and "
                f"{pairs[0][0].path}): they cannot be paired image by image"
            )


def _seeds(variant: Variant) -> str:
    return ",".join(sorted({job.seed for job in variant.completed})) or "none"


def _check_duplicates(variants: list[Variant]) -> None:
    for variant in variants:
        seen: dict[str, Job] = {}
        for job in variant.completed:
            if job.seed in seen:
                raise SegexpError(
                    f"runs: {seen[job.seed].path} and {job.path} are the same variant "
                    f"(`{variant.label}`) with the same seed {job.seed}: give one of them"
                )
            seen[job.seed] = job


def compare_runs(
    entries: list[str],
    baseline: str,
    output: Path,
    replicates: int = 2000,
    allow_protocol_mismatch: bool = False,
) -> list[Job]:
    """The report of the runs ``entries`` name, each variant against ``baseline``'s, in
    ``output``."""
    found = {str(entry): runs_in(str(entry)) for entry in entries}
    jobs = list({job.path.resolve(): job for js in found.values() for job in js}.values())
    for job in jobs:
        job.name = str(job.path)
    variants = group_variants(jobs)
    for variant in variants:
        if variant.label == "(all jobs)":
            variant.label = "(no overrides)"
    base = baseline_variant(variants, baseline, found)
    _check_duplicates(variants)
    if len(variants) < 2:
        raise SegexpError(
            f"runs: all {len(jobs)} runs are one variant (`{base.label}`): give runs of another "
            "variant to compare with the baseline"
        )
    check_pairs(base, variants)
    ordered = [base, *(v for v in variants if v is not base)]
    comparisons = compare_to(base, ordered, replicates)
    title = f"# Runs compared with the baseline `{base.label}`"
    return write(
        output, jobs, ordered, comparisons, sweep=False,
        allow_protocol_mismatch=allow_protocol_mismatch, title=title,
    )  # fmt: skip
