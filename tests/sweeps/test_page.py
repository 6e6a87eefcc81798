"""report.md as a page: the steps column and the time budget each job had."""

from segexp.sweeps.jobs import Variant
from segexp.sweeps.page import markdown
from segexp.sweeps.table import variant_rows
from tests.sweeps.conftest import seed_pairs


def test_the_page_gives_each_variants_steps_and_the_jobs_budget_and_what_stopped_them(tmp_path):
    pairs, _ = seed_pairs(tmp_path, offsets=[1, 2])
    for n, (a, b) in enumerate(pairs):
        a.summary |= {"steps": 100 + n, "time_budget_s": 60.0, "stopped_by": "time_budget"}
        b.summary |= {
            "steps": 90,
            "time_budget_s": 60.0,
            "stopped_by": "epochs" if n else "time_budget",
        }
    base = Variant("aug=none", {"aug": "none"}, [a for a, _ in pairs], ["aug=none"])
    other = Variant("aug=strong", {"aug": "strong"}, [b for _, b in pairs], ["aug=strong"])
    jobs = [*base.jobs, *other.jobs]
    page = markdown(tmp_path, jobs, [], variant_rows([base, other], []), [], [])
    assert "Each job's time budget: 60 s (stopped by: epochs 1, time_budget 3)." in page
    header = next(line for line in page.splitlines() if line.startswith("| variant | seeds"))
    assert header.rstrip(" |").endswith("steps")
    rows = [line for line in page.splitlines() if line.startswith("| `aug=")]
    assert rows[0].endswith("| 100 ± 1 |") and rows[1].endswith("| 90 ± 0 |")
    for job in jobs:  # runs of a length in epochs: no budget line
        del job.summary["time_budget_s"]
    assert "time budget" not in markdown(
        tmp_path, jobs, [], variant_rows([base, other], []), [], []
    )


def test_the_decisions_say_the_round_of_each_verdict_and_price_the_fixed_seed_sweeps(tmp_path):
    record = {
        "rules": {"first_round": 2, "seeds_per_round": 1, "max_seeds": 5, "min_effect": 0.01},
        "baseline": "aug=none",
        "outcomes": [{"variant": "aug=strong", "decision": "worse", "round": 2, "seeds": 3,
                      "diff": -0.05, "low": -0.08, "high": -0.02}],
        "rounds": [{"round": 1, "jobs": 4, "seconds": 30.0},
                   {"round": 2, "jobs": 2, "seconds": 18.0}],
        "jobs_run": 6,
        "fixed_seed_jobs": {"3": 6, "5": 10},
    }  # fmt: skip
    page = markdown(tmp_path, [], [], [], [], [], decisions=record)
    assert "| `aug=strong` | **worse** | 2 | 3 | -0.0500 | [-0.0800, -0.0200] |" in page
    assert "round 1: 4 jobs in 30 s, round 2: 2 jobs in 18 s" in page
    assert "3 seeds each: 6 jobs (about 48 s), 5 seeds each: 10 jobs (about 80 s)" in page
    assert "pace of 8 s a job" in page
