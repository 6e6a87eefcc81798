"""Job folders named by what the sweep varies, e.g. ``3_aug=strong,seed=1``.

Hydra names a job's folder from ``hydra.sweep.subdir``; ``hydra.job.override_dirname`` lists a
job's overrides but, by default, all of them, so every folder of a sweep would repeat the
overrides common to all its jobs (``trainer.epochs=3``, ``experiment=...``). At the start of a
multirun, the command's overrides that are not sweeps become that sweep's
``override_dirname.exclude_keys``; Hydra rebuilds each job's config with the command's ``hydra.*``
overrides, so the setting reaches every job, whichever launcher runs it. The number in front
keeps names unique and in launch order, and lets a resumed sweep find the same folders.
The name itself is built by the ``segexp_job_dir`` resolver (config/resolvers.py).
"""

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, read_write


def fixed_override_keys(config: DictConfig) -> list[str]:
    """Keys that the multirun's command sets to one value for every job."""
    parser = OverridesParser.create()
    swept = {str(key) for key in OmegaConf.select(config, "hydra.sweeper.params") or {}}
    fixed = []
    for override in parser.parse_overrides(list(config.hydra.overrides.task)):
        if override.is_sweep_override() or override.key_or_group in swept:
            continue
        fixed.append(override.key_or_group)
    return fixed


def name_jobs_by_swept_keys(config: DictConfig) -> None:
    """Add the fixed keys to ``override_dirname.exclude_keys`` for every job of this multirun."""
    node = config.hydra.job.config.override_dirname
    excluded = list(dict.fromkeys([*node.exclude_keys, *fixed_override_keys(config)]))
    quoted = ",".join("'" + key.replace("'", "\\'") + "'" for key in excluded)
    with read_write(config.hydra):
        config.hydra.overrides.hydra.append(
            f"hydra.job.config.override_dirname.exclude_keys=[{quoted}]"
        )
        node.exclude_keys = excluded
