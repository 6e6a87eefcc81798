"""`segexp-report sweep=<multirun folder>`: write (again) a sweep's report.md, report.csv and
report.png; conf/report.yaml lists the options."""

import logging
from pathlib import Path

from omegaconf import DictConfig

from segexp.config.cli import hydra_app, run_tool
from segexp.runtime import interrupt
from segexp.storage.files import check_output
from segexp.sweeps.report import failure_line, write_report

log = logging.getLogger("segexp")


def report(cfg: DictConfig) -> Path:
    sweep_dir = check_output(cfg.sweep, "sweep", folder=True)
    jobs = write_report(sweep_dir, int(cfg.replicates))
    log.info("%s", (sweep_dir / "report.md").read_text())
    log.info("written: %s/report.md, report.csv, report.png", sweep_dir)
    line = failure_line(jobs)
    if line:
        log.warning("%s", line)
    return sweep_dir / "report.md"


@hydra_app("report")
def main(cfg: DictConfig) -> None:
    run_tool(interrupt.interruptible(report), cfg)


if __name__ == "__main__":
    main()
