"""The config tree's own interpolations: where a run writes, which depends on ``resume=``.

Registered on import; config/paths.py imports this module, so whatever composes the tree (every
entry point, tests) has them.
"""

import re
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from segexp.storage.checkpoint import last_checkpoint
from segexp.storage.run_record import holds_run

MAX_JOB_DIR_CHARS = 120  # well under the 255 bytes a file name may have


def _resumable(resume: Any) -> bool:
    return resume is not None and last_checkpoint(str(resume)).is_file()


def run_dir_resolver(resume: Any, new_run_dir: str) -> str:
    """hydra.run.dir: the resumed folder, else a new one (a bad resume= fails in a new folder,
    so nothing is written into a folder the user mistyped)."""
    return str(Path(str(resume))) if _resumable(resume) else new_run_dir


def hydra_subdir_resolver(resume: Any, stamp: str, output_dir: Any = None, mode: Any = None) -> str:
    """hydra.output_subdir: a resumed run keeps its original .hydra/ and records the resume
    invocation beside it; so does a new single run pointed at a folder that holds a run, so that
    a refusal can leave that folder as it was (runtime/run_folder.py)."""
    if _resumable(resume):
        return f".hydra/resume_{stamp}"
    if str(mode).endswith("RUN") and output_dir is not None and holds_run(str(output_dir)):
        return f".hydra/rerun_{stamp}"
    return ".hydra"


def sweep_dir_resolver(storage: Any, study_dir: str, new_sweep_dir: str) -> str:
    """hydra.sweep.dir of hparams_search=optuna: the study's own folder when the study is in a
    storage (its processes share it, sweeps/study.py), else a new one."""
    return study_dir if storage else new_sweep_dir


def job_dir_resolver(number: Any, override_dirname: Any) -> str:
    """hydra.sweep.subdir: ``<job number>_<swept overrides>`` (sweeps/naming.py), with long
    decimals (an Optuna trial's 0.0022881136684755237) cut to 4 significant digits."""
    overrides = str(override_dirname or "").replace("/", "_")
    overrides = re.sub(r"(?<==)-?\d+\.\d{5,}(?:e-?\d+)?", lambda m: f"{float(m[0]):.4g}", overrides)
    return f"{number}_{overrides}"[:MAX_JOB_DIR_CHARS] if overrides else str(number)


OmegaConf.register_new_resolver("segexp_job_dir", job_dir_resolver, replace=True)
OmegaConf.register_new_resolver("segexp_run_dir", run_dir_resolver, replace=True)
OmegaConf.register_new_resolver("segexp_sweep_dir", sweep_dir_resolver, replace=True)
OmegaConf.register_new_resolver("segexp_hydra_subdir", hydra_subdir_resolver, replace=True)
