"""Job folders are named by the swept keys of the command line and the preset only."""

from omegaconf import OmegaConf


def test_job_folders_name_only_the_swept_keys_of_command_and_preset():
    from hydra._internal.config_loader_impl import get_overrides_dirname
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from segexp.config.resolvers import job_dir_resolver
    from segexp.sweeps.naming import name_jobs_by_swept_keys

    config = OmegaConf.create(
        {
            "hydra": {
                "overrides": {
                    "task": ["experiment=aug_ablation", "trainer.epochs=3", "lr=1e-3,1e-2"],
                    "hydra": ["hydra.sweep.dir=x"],
                },
                "sweeper": {"params": {"aug": "none,strong", "seed": "0,1,2"}},
                "job": {"config": {"override_dirname": {"exclude_keys": ["name"]}}},
            }
        }
    )
    name_jobs_by_swept_keys(config)
    excluded = ["name", "experiment", "trainer.epochs"]
    assert config.hydra.job.config.override_dirname.exclude_keys == excluded
    appended = config.hydra.overrides.hydra[-1]  # what every job's config is rebuilt with
    parsed = OverridesParser.create().parse_overrides([appended])[0]
    assert parsed.key_or_group == "hydra.job.config.override_dirname.exclude_keys"
    assert parsed.value() == excluded
    job = [
        "experiment=aug_ablation",
        "trainer.epochs=3",
        "lr=1e-2",
        "aug=strong",
        "seed=1",
        "name=a",
    ]
    dirname = get_overrides_dirname(
        OverridesParser.create().parse_overrides(job), excluded, item_sep=",", kv_sep="="
    )
    assert job_dir_resolver(4, dirname) == "4_aug=strong,lr=1e-2,seed=1"
    assert job_dir_resolver(0, "") == "0"
    assert job_dir_resolver(1, "dataset.root=/data/a") == "1_dataset.root=_data_a"
    trial = "optimizer.lr=0.0022881136684755237,loss.weights.ce=1.2055267521432877,seed=0.5"
    assert job_dir_resolver(2, trial) == "2_optimizer.lr=0.002288,loss.weights.ce=1.206,seed=0.5"
