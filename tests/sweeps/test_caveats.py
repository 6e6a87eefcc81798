"""The report's warnings: few seeds, shortened runs, differences within the seed spread."""

from omegaconf import OmegaConf

from segexp.sweeps.caveats import caveats, shortcuts, timings_comparable
from segexp.sweeps.jobs import Variant
from segexp.sweeps.page import markdown
from segexp.sweeps.paired import compare
from segexp.sweeps.table import variant_rows
from tests.sweeps.conftest import seed_pairs


def test_report_warns_about_few_seeds_debug_runs_and_differences_within_the_spread(tmp_path):
    pairs, _ = seed_pairs(tmp_path, offsets=[-6, 1, 6])
    for job in (pairs[0][0], pairs[0][1]):
        job.summary["choices"] = {"trainer": "debug"}
        OmegaConf.save({"trainer": {"limit_train_batches": 3}}, job.path / "resolved_config.yaml")
    assert shortcuts(pairs[0][0]) == ["trainer=debug", "trainer.limit_train_batches=3"]
    assert shortcuts(pairs[1][0]) == []
    base = Variant("aug=none", {"aug": "none"}, [a for a, _ in pairs], ["aug=none"])
    other = Variant("aug=strong", {"aug": "strong"}, [b for _, b in pairs[:2]], ["aug=strong"])
    comparisons = compare([base, other], replicates=300)
    warnings = caveats([base, other], comparisons)
    text = "\n".join(warnings)
    assert "Fewer than 3 completed seeds" in text and "`aug=strong` (2)" in text
    assert "`aug=none`" not in text.split("\n")[0]
    assert "(`trainer=debug trainer.limit_train_batches=3`) in job(s) a0, b0:" in text
    assert "smaller than its seed-to-seed spread" in text
    page = markdown(tmp_path, [*base.jobs, *other.jobs], [], variant_rows([base, other], []),
                    [], comparisons, warnings)  # fmt: skip
    assert "## Read with care" in page and "sample standard deviation (ddof=1)" in page
    assert "95% CI (seeds + images)" in page and "95% t over seeds" in page
    clean = caveats([base], [])
    assert all("Shortened" not in w for w in clean if "a0" not in w)


def test_report_warns_about_unconverged_runs_and_timings_taken_differently(tmp_path):
    pairs, _ = seed_pairs(tmp_path, offsets=[2, 8, 14])
    for n, (a, b) in enumerate(pairs):
        a.summary |= {"best_epoch": 8, "epochs_run": 8, "device": "cpu", "num_threads": 2}
        b.summary |= {"best_epoch": 8 if n else 5, "epochs_run": 8, "device": "cpu",
                      "num_threads": 2 if n else 1}  # fmt: skip
    base = Variant("aug=none", {"aug": "none"}, [a for a, _ in pairs], ["aug=none"])
    other = Variant("aug=strong", {"aug": "strong"}, [b for _, b in pairs], ["aug=strong"])
    text = "\n".join(caveats([base, other], []))
    assert "**Not converged**: in 5 of 6 jobs the best val epoch is the last one" in text
    assert "**Timings not comparable**" in text and "cpu, None, 1, None; cpu, None, 2, None" in text
    jobs = [*base.jobs, *other.jobs]
    rows = variant_rows([base, other], [])
    page = markdown(tmp_path, jobs, [], rows, [], [], timings=timings_comparable(jobs))
    assert "images/s" not in page
    for job in jobs:  # the same setup everywhere, and one job stopped early: nothing to say
        job.summary |= {"num_threads": 2, "stopped_early": {"epoch": 8}}
    text = "\n".join(caveats([base, other], []))
    assert "Timings" not in text and "Not converged" not in text
    assert "images/s" in markdown(
        tmp_path, jobs, [], rows, [], [], timings=timings_comparable(jobs)
    )
