"""The protocol guard: runs scored under different evaluation protocols are never paired silently.

Every summary.json records its evaluation protocol (evaluation/protocol.py: test files, label
mapping, evaluation resolution, TTA, post-processing, the splits trained on). Before a report
pairs two runs, their protocols are compared field by field. A difference is deliberate only
when a compared variable sets that field: in a sweep, a key the sweep varies between the two
variants (``dataset.eval_resize=null,0.5`` compares evaluation resolutions); ``runs=`` declares
no compared variable, so there every difference is refused. The refusal is one line naming the
runs and the difference; ``allow_protocol_mismatch=true`` pairs them anyway and the report lists
what differs.
"""

from typing import Any

from segexp.errors import SegexpError
from segexp.evaluation.protocol import SOURCES
from segexp.sweeps.jobs import Job, override_key
from segexp.sweeps.paired import Comparison
from segexp.training.loggers.hparams import hparam_name

FIX = (
    "compare runs scored the same way, or give allow_protocol_mismatch=true to pair them "
    "anyway (the report then lists the difference)"
)


def _leaves(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        found: dict[str, Any] = {}
        for key, child in value.items():
            found |= _leaves(child, f"{prefix}.{key}")
        return found
    return {prefix: value}


FIELDS = [field for field in SOURCES if "." not in field]


def differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Field -> {leaf: ``value_a vs value_b``} for every leaf of two protocols that differs."""
    found: dict[str, dict[str, str]] = {}
    for field in FIELDS:
        leaves_a, leaves_b = _leaves(a.get(field), field), _leaves(b.get(field), field)
        for key in sorted(set(leaves_a) | set(leaves_b)):
            if leaves_a.get(key) != leaves_b.get(key):
                found.setdefault(field, {})[key] = f"{leaves_a.get(key)!r} vs {leaves_b.get(key)!r}"
    return found


def _related(key: str, source: str) -> bool:
    return key == source or key.startswith(f"{source}.") or source.startswith(f"{key}.")


def explained(leaf: str, compared: set[str]) -> bool:
    """Does one of the ``compared`` keys (as HParams names them) set this leaf of a protocol?
    The most specific entry of SOURCES that holds the leaf names the keys that set it."""
    holders = [name for name in SOURCES if leaf == name or leaf.startswith(f"{name}.")]
    sources = SOURCES[max(holders, key=len)]
    return any(_related(key, source) for key in compared for source in sources)


def compared_keys(base: Job, other: Job) -> set[str]:
    """The override keys (seed aside) whose value differs between two jobs of one sweep."""
    values = [
        {override_key(o): o.partition("=")[2] for o in job.overrides} for job in (base, other)
    ]
    keys = (set(values[0]) | set(values[1])) - {"seed"}
    return {hparam_name(k) for k in keys if values[0].get(k) != values[1].get(k)}


def _label(job: Job) -> str:
    return str(job.path)


def check(comparisons: list[Comparison], *, sweep: bool, allow: bool) -> list[str]:
    """Raises a SegexpError naming the first unexplained difference, unless ``allow``; returns
    the report's lines: the differences allowed, and the runs whose protocol is not recorded.
    ``sweep``: the jobs come from one sweep, whose varying keys are the compared variables."""
    lines: list[str] = []
    unrecorded: list[str] = []
    for comparison in comparisons:
        reference = comparison.pairs[0][0]
        jobs = {id(j): j for pair in comparison.pairs for j in pair}  # Jobs are not hashable
        for job in jobs.values():
            if "protocol" not in job.summary or "protocol" not in reference.summary:
                unrecorded.append(_label(job))
                continue
            baseline_side = any(job is a for a, _ in comparison.pairs)
            compared = set() if baseline_side or not sweep else compared_keys(reference, job)
            found = differences(reference.summary["protocol"], job.summary["protocol"])
            for field, leaves in found.items():
                items = [f"{leaf}: {change}" for leaf, change in leaves.items()
                         if not explained(leaf, compared)]  # fmt: skip
                if not items:
                    continue
                what = "; ".join(items)
                line = (
                    f"the evaluation protocols of {_label(reference)} and {_label(job)} differ "
                    f"in {field} ({what}), which is not what the comparison varies"
                )
                if not allow:
                    raise SegexpError(f"{line}: {FIX}")
                lines.append(f"- **Protocol differs (allowed)**: {line}.")
    if unrecorded:
        names = ", ".join(dict.fromkeys(unrecorded))
        lines.append(
            f"- **Protocol not recorded** in {names} (made before segexp recorded it): whether "
            "they were scored the same way (test files, labels, resolution, TTA) is unchecked."
        )
    return list(dict.fromkeys(lines))
