"""torchrun with two CPU processes: on one node, one run folder with the metrics of one process;
over two "nodes" on this machine (gloo on localhost), the run of one node; a node that dies stops
the other with one line, and the run resumes exactly from its last checkpoint."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from segexp.storage.checkpoint import load_checkpoint
from tests.conftest import DISTRIBUTED_RUN, REPO, evaluate_tool, free_port, needs_gloo

pytestmark = [pytest.mark.slow, needs_gloo]

# Three epochs of 25 steps a process: long enough to kill a node between two checkpoints.
RUN = [*DISTRIBUTED_RUN, "trainer.epochs=3", "dataset.train.num_samples=200",
       "trainer.deterministic=true", "trainer.print_config=false", "loss=ce",
       "optimizer.lr=0.03", "logger=tensorboard", "trainer.time_budget=null"]  # fmt: skip


def torchrun(options: list[str], *overrides: str, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", *options, "-m", "segexp", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def two_nodes(*overrides: str, logs: Path) -> list[subprocess.Popen]:
    """``torchrun --nnodes=2 --node_rank=0|1 --nproc_per_node=1`` on 127.0.0.1."""
    port = free_port()
    nodes = []
    for rank in (0, 1):
        options = ["--nnodes=2", f"--node_rank={rank}", "--nproc_per_node=1",
                   "--master_addr=127.0.0.1", f"--master_port={port}"]  # fmt: skip
        nodes.append(torchrun(options, *overrides, log=logs / f"node{rank}.log"))
    return nodes


def finished(processes: list[subprocess.Popen], logs: list[Path]) -> None:
    codes = [p.wait(timeout=300) for p in processes]
    assert codes == [0] * len(codes), [log.read_text()[-3000:] for log in logs]


def metrics(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["world_size"] == 2
    return {"val": summary["val"], "test": summary["test"], "best": summary["best_epoch"]}


@pytest.fixture(scope="module")
def one_node(tmp_path_factory) -> tuple[Path, str]:
    """``torchrun --nproc_per_node=2``: the reference run, and its console."""
    root = tmp_path_factory.mktemp("one_node")
    options = ["--nproc_per_node=2", f"--master_port={free_port()}"]
    process = torchrun(options, *RUN, f"hydra.run.dir={root / 'run'}", log=root / "log")
    finished([process], [root / "log"])
    return root / "run", (root / "log").read_text()


def test_torchrun_two_processes_write_one_run_with_single_process_metrics(one_node, tmp_path):
    run_dir, console = one_node
    assert console.count("final metrics") == 1  # only rank 0 logs
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["world_size"] == 2
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1

    for split in ("val", "test"):  # one process, the same weights, the whole split
        evaluate_tool(f"run={run_dir}", f"split={split}", f"output={tmp_path / split}")
        single = json.loads((tmp_path / split / "metrics.json").read_text())  # NaN as null
        for key, value in summary[split].items():
            assert single[key] == value, (split, key)


def children(pid: int) -> list[int]:
    return [int(c) for t in Path(f"/proc/{pid}/task").iterdir()
            for c in (t / "children").read_text().split()]  # fmt: skip


def test_two_nodes_train_like_one_and_a_node_that_dies_stops_the_other_and_resumes_exactly(
    one_node, tmp_path
):
    """Two nodes on this machine; node 1 is killed between two checkpoints. Node 0 stops with
    one line, and the run resumed on both nodes ends with the metrics of the run on one node
    (two processes): what it would have ended with, uninterrupted, on two nodes."""
    run_dir = tmp_path / "run"
    nodes = two_nodes(*RUN, f"hydra.run.dir={run_dir}", logs=tmp_path)
    try:
        deadline = time.monotonic() + 200
        while not (run_dir / "checkpoints" / "last.pt").is_file():
            assert time.monotonic() < deadline and nodes[0].poll() is None
            time.sleep(0.05)
        # Node 1 dies: its torchrun and the training process it started.
        for pid in [*children(nodes[1].pid), nodes[1].pid]:
            os.kill(pid, signal.SIGKILL)
        nodes[0].wait(timeout=120)  # no hang: it stops by itself
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
            node.wait()
    assert nodes[0].returncode != 0
    console = (tmp_path / "node0.log").read_text()
    errors = [line for line in console.splitlines() if "[segexp][ERROR]" in line]
    assert len(errors) == 1, console[-3000:]
    assert "another process of this torchrun run stopped or stopped answering" in errors[0]
    assert f"the same torchrun command with resume={run_dir}, on every node" in errors[0]
    assert not re.search(r'File ".*/segexp/', console)  # no traceback from segexp (torchrun
    # adds its own report of the failed process)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "another process" in summary["reason"]
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] in (1, 2)  # mid-run

    again = tmp_path / "resume"
    again.mkdir()
    finished(two_nodes(f"resume={run_dir}", logs=again), list(again.iterdir()))
    assert metrics(run_dir) == metrics(one_node[0])
    assert json.loads((run_dir / "summary.json").read_text())["exact_resume"] is True
    weights = [
        load_checkpoint(d / "checkpoints" / "last.pt")["model"] for d in (run_dir, one_node[0])
    ]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[1])  # the last epoch's
    # Only rank 0 wrote a run folder; node 1 kept Hydra's files in a temporary folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node0.log", "node1.log", "resume", "run"]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    logs = [(again / f"node{rank}.log").read_text() for rank in (0, 1)]
    assert "final metrics" in logs[0] and "final metrics" not in logs[1]  # rank 0 logs
