"""SLURM without a cluster: the multi-node recipe (docs/slurm/multinode.sbatch) submitted to a
fake ``sbatch`` that runs it as a two-node job, with fake ``scontrol`` and ``srun``, and the
torchrun command it starts on each node; and a sweep's job preempted under submitit, requeued
by submitit's local executor, and continued exactly."""

import json
import os
import signal
import subprocess
import threading
import time

import pytest
from torch.distributed.run import get_args_parser

from segexp.training.fit import fit
from tests.conftest import REPO, TINY, cli_env, compose_config, segexp_cli

RECIPE = REPO / "docs" / "slurm" / "multinode.sbatch"
FAKES = {
    # sbatch: the batch script run here, as on the first of two nodes with four GPUs each.
    "sbatch": """export SLURM_JOB_ID=4242 SLURM_JOB_NUM_NODES=2 SLURM_JOB_NODELIST=gpu7,gpu8
export SLURM_GPUS_ON_NODE=4
exec bash "$@"
""",
    "scontrol": """[ "$1 $2" = "show hostnames" ] && echo "$3" | tr ',' '\\n'
""",
    # srun: what it would start on every node (one task a node), one argument a line.
    "srun": """printf '%s\\n' "$@" > "$FAKE_SLURM/srun.args"
""",
}


def test_the_multinode_recipe_starts_one_torchrun_a_node_meeting_on_the_first(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in FAKES.items():
        (bin_dir / name).write_text("#!/bin/bash\n" + body)
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_SLURM": str(tmp_path)}
    result = subprocess.run(
        ["sbatch", str(RECIPE), "model=smp_unet", "trainer.epochs=100"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    header = [line for line in RECIPE.read_text().splitlines() if line.startswith("#SBATCH")]
    assert {"#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --requeue"} <= set(
        header
    )  # one torchrun a node; a preempted job goes back to the queue
    command = (tmp_path / "srun.args").read_text().splitlines()
    assert command[0] == "torchrun"
    args = get_args_parser().parse_args(command[1:])  # torchrun's own parser takes it
    assert (args.nnodes, args.nproc_per_node) == ("2", "4")
    assert (args.rdzv_backend, args.rdzv_endpoint, args.rdzv_id) == ("c10d", "gpu7:29500", "4242")
    assert args.module and args.training_script == "segexp"
    # Named by the job, so that a requeued job continues in its folder (tests of the rendezvous
    # itself: test_distributed_runs.py, two nodes on this machine).
    assert args.training_script_args == [
        "hydra.run.dir=outputs/runs/slurm-4242",
        "model=smp_unet",
        "trainer.epochs=100",
    ]


# Four epochs of 16 steps; the learning rate makes a late epoch the best one, so the final
# metrics come from after the preemption.
REQUEUED = [*TINY, "trainer.epochs=4", "dataset.train.num_samples=64", "trainer.deterministic=true",
            "logger=none", "loss=ce", "optimizer.lr=0.03", "trainer.time_budget=null"]  # fmt: skip


@pytest.mark.slow
def test_a_preempted_sweep_job_is_requeued_by_submitit_and_continues_exactly(
    tmp_path, monkeypatch, capsys
):
    """The sweep runs in this process, its job (and the requeued job) in submitit's."""
    sweep_dir, job = tmp_path / "sweep", tmp_path / "sweep" / "0"
    monkeypatch.setenv("PYTHONPATH", cli_env()["PYTHONPATH"])  # the job imports this checkout
    preempted = []

    def preempt_after_epoch_1() -> None:
        deadline = time.monotonic() + 200
        while not (job / "checkpoints" / "last.pt").is_file():
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        holder = (job / ".segexp.lock").read_text()  # "PID <the job's process> on ..."
        os.kill(int(holder.split()[1]), signal.SIGUSR2)  # what SLURM sends at preemption
        preempted.append(holder)

    signaller = threading.Thread(target=preempt_after_epoch_1, daemon=True)
    signaller.start()
    code = segexp_cli("--multirun", "hydra/launcher=submitit_local", *REQUEUED, "seed=0",
                      f"hydra.sweep.dir={sweep_dir}")  # fmt: skip
    signaller.join(timeout=60)
    assert code == 0 and preempted, "".join(capsys.readouterr())[-3000:]
    submitit = "".join(p.read_text() for p in sweep_dir.glob(".submitit/*/*_log.out"))
    assert "Requeued job" in submitit  # submitit's own protocol: checkpointed, requeued
    log = (job / "segexp.log").read_text()
    assert "interrupted by SIGUSR2; submitit requeues the job" in log and "resuming from" in log
    got = json.loads((job / "summary.json").read_text())
    (tmp_path / "uninterrupted").mkdir()
    fit(compose_config(REQUEUED), tmp_path / "uninterrupted")  # in this process
    want = json.loads((tmp_path / "uninterrupted" / "summary.json").read_text())
    assert got["status"] == "completed" and got["exact_resume"] is True
    assert got["val"] == want["val"] and got["test"] == want["test"]
    assert got["best_epoch"] == want["best_epoch"] > 1
