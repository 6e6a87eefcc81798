"""How many CPU threads torch may use: `trainer.num_threads` (auto or a number).

The policy of ``auto`` (docs/performance.md): OpenMP threads busy-wait for each other, so on a
core shared with another busy process one step can take many times as long as with fewer
threads (docs/performance.md has the measurement). ``auto`` therefore takes

1. the cores this process may run on (``os.sched_getaffinity``, which follows taskset, cgroups'
   cpusets and SLURM's binding), divided by the processes started beside it on this node
   (torchrun's ``LOCAL_WORLD_SIZE``; a sweep launcher's parallel jobs), then
2. minus the cores other processes keep busy now (rounded), at least one thread. "Now" is the
   median of a few samples of the runnable tasks in /proc/loadavg, not the 1-minute load
   average alone, which lags: a job that ended a minute ago would still halve the threads.

An explicit ``OMP_NUM_THREADS`` in the environment wins over ``auto``: whoever set it knew the
machine. The count is decided once, when a run starts.
"""

import math
import os
import statistics
import time
from pathlib import Path

import torch


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def auto_threads(cores: int, load: float, processes: int = 1) -> int:
    """Threads for one of ``processes`` processes on ``cores`` cores with ``load`` busy ones."""
    share = max(1, cores // max(1, processes))
    if processes > 1:
        return share
    return max(1, min(share, math.floor(cores - load + 0.5)))


def resolve_threads(setting: int | str, processes: int = 1) -> int:
    """The thread count `trainer.num_threads` (checked: config/trainer.py) asks for here now."""
    if setting != "auto":
        return int(setting)
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    processes = max(processes, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return auto_threads(available_cores(), busy_cores(), processes)


def busy_cores(
    samples: int = 3, interval_s: float = 0.01, source: Path = Path("/proc/loadavg")
) -> float:
    """Cores kept busy by other processes: the median over ``samples`` readings of the runnable
    tasks in /proc/loadavg besides this one; the 1-minute load average where it is missing."""
    counts = []
    for i in range(samples):
        try:
            running = source.read_text().split()[3].split("/")[0]
        except (OSError, IndexError):
            break
        counts.append(max(0, int(running) - 1))
        if i + 1 < samples:
            time.sleep(interval_s)
    if counts:
        return float(statistics.median(counts))
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def set_threads(setting: int | str, processes: int = 1) -> int:
    """Apply `trainer.num_threads` to torch's intra-op pool; returns the count."""
    threads = resolve_threads(setting, processes)
    torch.set_num_threads(threads)
    return threads
