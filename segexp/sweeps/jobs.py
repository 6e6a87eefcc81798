"""The jobs of a sweep folder: their overrides, seed, status and summary, grouped into variants."""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from segexp.errors import SegexpError


@dataclass
class Job:
    name: str  # folder relative to the sweep folder, e.g. "3_aug=strong,seed=1"
    path: Path
    overrides: list[str]
    seed: str
    status: str  # completed | failed | interrupted | unfinished (no summary.json yet)
    reason: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class Variant:
    label: str  # the overrides other than seed, as typed
    factors: dict[str, str]  # override key -> value
    jobs: list[Job]
    overrides: list[str] = field(default_factory=list)  # as typed, seed left out

    @property
    def completed(self) -> list[Job]:
        return [job for job in self.jobs if job.status == "completed"]


def override_key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~")


def _natural(path: Path) -> tuple:
    """Job number order: "2_aug=none" before "10_aug=none"."""
    numbered = (re.match(r"(\d+)(?:_|$)", part) for part in path.parts)
    return tuple(
        (0, int(match[1]), part) if match else (1, 0, part)
        for match, part in zip(numbered, path.parts, strict=True)
    )


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """Folders holding a job: Hydra's `.hydra/` or a summary.json, in job-number order."""
    found = {p.parent for p in sweep_dir.rglob(".hydra") if p.is_dir()}
    found |= {p.parent for p in sweep_dir.rglob("summary.json")}
    found.discard(sweep_dir)
    return sorted(found, key=lambda p: _natural(p.relative_to(sweep_dir)))


def load_job(path: Path, sweep_dir: Path) -> Job:
    summary: dict[str, Any] = {}
    summary_file = path / "summary.json"
    if summary_file.is_file():
        try:
            summary = json.loads(summary_file.read_text())
        except json.JSONDecodeError as err:
            summary = {"status": "failed", "reason": f"unreadable summary.json: {err}"}
    overrides = summary.get("overrides")
    if overrides is None and (path / ".hydra" / "overrides.yaml").is_file():
        overrides = list(OmegaConf.load(path / ".hydra" / "overrides.yaml"))
    overrides = [str(o) for o in overrides or []]
    seed = next((o.partition("=")[2] for o in overrides if override_key(o) == "seed"), None)
    if seed is None and (path / ".hydra" / "config.yaml").is_file():
        seed = str(OmegaConf.load(path / ".hydra" / "config.yaml").get("seed", "0"))
    status = summary.get("status", "unfinished")
    reason = summary.get("reason", "")
    if status == "unfinished":
        reason = "no summary.json: still running, or killed before it could write one"
    return Job(
        name=str(path.relative_to(sweep_dir)),
        path=path,
        overrides=overrides,
        seed=seed or "0",
        status=status,
        reason=reason,
        summary=summary if status == "completed" else {},
    )


def load_jobs(sweep_dir: Path) -> list[Job]:
    if not sweep_dir.is_dir():
        raise SegexpError(f"sweep folder {sweep_dir} does not exist: pass a multirun folder")
    jobs = [load_job(path, sweep_dir) for path in find_job_dirs(sweep_dir)]
    if not jobs:
        raise SegexpError(
            f"no jobs in {sweep_dir}: pass a folder made by `python -m segexp --multirun ...`, "
            "e.g. outputs/multirun/<date>/<time>"
        )
    return jobs


def group_variants(jobs: list[Job]) -> list[Variant]:
    """Jobs that differ only in `seed` form one variant; variants keep the jobs' order.

    A variant's label shows only the overrides that differ between variants.
    """
    variants: dict[tuple[str, ...], Variant] = {}
    for job in jobs:
        rest = [o for o in job.overrides if override_key(o) != "seed"]
        key = tuple(sorted(rest))
        if key not in variants:
            factors = {override_key(o): o.partition("=")[2] for o in rest}
            variants[key] = Variant("", factors, [], rest)
        variants[key].jobs.append(job)
    result = list(variants.values())
    varying = varying_keys(result)
    for variant in result:
        shown = [readable(o) for o in variant.overrides if override_key(o) in varying]
        variant.label = " ".join(shown) or "(all jobs)"
    return result


def readable(override: str) -> str:
    """``optimizer.lr=0.0012345678`` -> ``optimizer.lr=0.00123``: Optuna's sampled floats rounded
    to 3 significant digits for labels (the overrides themselves stay exact)."""
    key, sep, value = override.partition("=")
    try:
        number = float(value)
    except ValueError:
        return override
    if not sep or ("." not in value and "e" not in value.lower()):
        return override  # integers and words as typed
    return f"{key}={number:.3g}"


def varying_keys(variants: list[Variant]) -> set[str]:
    """Override keys whose value (or absence) is not the same in every variant."""
    keys = {k for v in variants for k in v.factors}
    return {k for k in keys if len({v.factors.get(k) for v in variants}) > 1}


def common_overrides(variants: list[Variant]) -> list[str]:
    varying = varying_keys(variants)
    first = variants[0].overrides if variants else []
    return [o for o in first if override_key(o) not in varying]
