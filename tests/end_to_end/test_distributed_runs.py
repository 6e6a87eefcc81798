"""torchrun with two CPU processes: one run folder, with the metrics of one process."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import DISTRIBUTED_RUN, REPO, evaluate_tool, free_port, needs_gloo

pytestmark = pytest.mark.slow


@needs_gloo
def test_torchrun_two_processes_write_one_run_with_single_process_metrics(tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         f"--master_port={free_port()}", "-m", "segexp", *DISTRIBUTED_RUN, "trainer.epochs=1",
         "logger=tensorboard", f"hydra.run.dir={run_dir}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (result.stdout + result.stderr).count("final metrics") == 1  # only rank 0 logs
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["world_size"] == 2
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1

    for split in ("val", "test"):  # one process, the same weights, the whole split
        evaluate_tool(f"run={run_dir}", f"split={split}", f"output={tmp_path / split}")
        single = json.loads((tmp_path / split / "metrics.json").read_text())  # NaN as null
        for key, value in summary[split].items():
            assert single[key] == value, (split, key)
