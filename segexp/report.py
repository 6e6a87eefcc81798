"""`segexp-report sweep=<multirun folder>`: write (again) a sweep's report;
`segexp-report runs=[<run or sweep folder>, ...] baseline=<one of them>`: compare any finished
runs. conf/report.yaml lists the options."""

import datetime
import logging
from pathlib import Path

from omegaconf import DictConfig

from segexp.config.cli import hydra_app, run_tool
from segexp.errors import SegexpError
from segexp.runtime import interrupt
from segexp.storage.files import check_output
from segexp.sweeps.report import failure_line, write_report
from segexp.sweeps.runs import compare_runs

log = logging.getLogger("segexp")
COMPARISONS = Path("outputs") / "comparisons"


def report(cfg: DictConfig) -> Path:
    allow = bool(cfg.allow_protocol_mismatch)
    if cfg.runs:
        if cfg.sweep:
            raise SegexpError("give sweep=<folder> or runs=[...], not both")
        if not cfg.baseline:
            raise SegexpError(
                "runs=[...] needs baseline=<one of the runs>: the run (or one-variant sweep) "
                "every other variant is compared with"
            )
        stamp = datetime.datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
        folder = check_output(cfg.output or COMPARISONS / stamp, "output", folder=True)
        entries = [str(entry) for entry in cfg.runs]
        jobs = compare_runs(entries, str(cfg.baseline), folder, int(cfg.replicates), allow)
    elif cfg.sweep:
        folder = check_output(cfg.sweep, "sweep", folder=True)
        jobs = write_report(folder, int(cfg.replicates), allow)
    else:
        raise SegexpError(
            "give sweep=<multirun folder>, or runs=[<run or sweep folder>, ...] baseline=<one "
            "of them>"
        )
    log.info("%s", (folder / "report.md").read_text())
    log.info("written: %s/report.md, report.csv, report.png, calibration.png, gallery/", folder)
    line = failure_line(jobs)
    if line:
        log.warning("%s", line)
    return folder / "report.md"


@hydra_app("report")
def main(cfg: DictConfig) -> None:
    run_tool(interrupt.interruptible(report), cfg)


if __name__ == "__main__":
    main()
