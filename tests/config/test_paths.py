"""The config tree config/paths.py finds: every option and preset composes, and builds."""

from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from segexp.config.build import build
from segexp.config.paths import CONFIG_DIR
from segexp.models.wrapper import SegmentationModel
from segexp.training.optim import build_optimizer
from tests.conftest import TINY, TINY_RUN, compose_config

GROUPS = ["dataset", "model", "loss", "aug", "optimizer", "scheduler", "trainer", "logger"]

OPTIONS = [
    (group, path.stem)
    for group in GROUPS
    for path in sorted((Path(CONFIG_DIR) / group).glob("*.yaml"))
]


def test_every_group_has_options():
    assert {group for group, _ in OPTIONS} == set(GROUPS)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_builds(group, option, tmp_path):
    overrides = [*TINY, f"{group}={option}"]
    if group == "model" and option != "unet":  # TINY's model.net.depth etc. are the U-Net's
        overrides = [o for o in overrides if not o.startswith("model.")]
    if group == "dataset" and not option.startswith("synthetic"):
        overrides = [*TINY_RUN, f"{group}={option}", f"dataset.root={tmp_path}"]
    cfg = compose_config(overrides)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    if group == "model":
        model = build(cfg.model)
        out = model(torch.rand(2, cfg.dataset.in_channels, 32, 32))
        assert out.shape == (2, cfg.dataset.num_classes, 32, 32)
    elif group == "loss":
        loss = build(cfg.loss)
        value = loss(torch.randn(2, cfg.dataset.num_classes, 8, 8), torch.randint(0, 5, (2, 8, 8)))
        assert value.ndim == 0 and torch.isfinite(value)
    elif group == "aug":
        transform = build(cfg.aug.train)
        image = torch.randint(0, 255, (40, 50, 3), dtype=torch.uint8).numpy()
        out = transform(image=image, mask=image[:, :, 0])
        assert out["image"].shape[:2] == tuple(cfg.dataset.image_size)
    elif group in ("optimizer", "scheduler"):
        optimizer = build_optimizer(cfg.optimizer, SegmentationModel(torch.nn.Conv2d(1, 1, 1)))
        build(cfg.scheduler)(optimizer=optimizer, total_steps=10)
    elif group == "logger":
        from segexp.training.loggers import open_writer

        open_writer(cfg.logger, tmp_path, None).close()


def test_class_settings_flow_from_the_dataset():
    cfg = compose_config(["name=test", "dataset.num_classes=7", "dataset.class_names=null"])
    assert cfg.model.net.num_classes == 7
    assert cfg.loss.losses.dice.num_classes == 7
    cfg = compose_config(["name=test", "dataset.ignore_index=99"])
    assert cfg.loss.losses.ce.ignore_index == 99


def test_unknown_option_lists_the_choices():
    with pytest.raises(ConfigCompositionException) as err:
        compose_config(["model=no_such_model"])
    assert "Available options" in str(err.value)
    assert "unet" in str(err.value)


def compose_with_hydra(overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize(
    ("preset", "params"),
    [
        ("aug_ablation", {"aug": "none,strong", "seed": "0,1,2"}),
        pytest.param(
            "loss_comparison",
            {"loss": "ce,dice,focal,combined", "seed": "0,1"},
            marks=pytest.mark.slow,
        ),
    ],
)
def test_experiment_preset_is_a_ready_sweep(preset, params):
    cfg = compose_with_hydra([f"+experiment={preset}"])
    assert dict(cfg.hydra.sweeper.params) == params
    assert cfg.name == preset and cfg.dataset.train.num_samples == 128
    # every swept option exists in its config group
    for group, values in params.items():
        if group != "seed":
            for value in values.split(","):
                compose_with_hydra([f"+experiment={preset}", f"{group}={value}"])


def test_optuna_search_space_and_objective():
    cfg = compose_with_hydra(["hparams_search=optuna"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("StudySweeper") and sweeper.direction == "maximize"
    assert sweeper.storage is None and sweeper.heartbeat_interval == 60
    assert set(sweeper.params) == {
        "optimizer.lr",
        "optimizer.weight_decay",
        "loss.weights.ce",
        "loss.weights.dice",
    }
    assert cfg.loss.weights.ce == 1.0  # the searched keys exist in the composed config


def test_a_shared_study_gathers_its_processes_in_one_folder_per_study():
    alone = compose_with_hydra(["hparams_search=optuna"]).hydra.sweep.dir
    shared = ["hparams_search=optuna", "hydra.sweeper.storage=sqlite:////s.db"]
    assert alone.startswith("outputs/multirun/20")  # a new folder, by date and time
    assert compose_with_hydra(shared).hydra.sweep.dir == "outputs/multirun/study_segexp"
    named = compose_with_hydra([*shared, "hydra.sweeper.study_name=lr"]).hydra.sweep.dir
    assert named == "outputs/multirun/study_lr"


def test_launcher_configs_compose():
    joblib = compose_with_hydra(["hydra/launcher=joblib"]).hydra.launcher
    assert joblib._target_.endswith("JoblibLauncher")
    slurm = compose_with_hydra(["hydra/launcher=slurm"]).hydra.launcher
    assert slurm._target_.endswith("SlurmLauncher") and slurm.gpus_per_node == 1


@pytest.mark.parametrize("order", ["before", "after"])
def test_optuna_preset_respects_trainer_debug(order):
    overrides = ["hparams_search=optuna", "trainer=debug"]
    cfg = compose_with_hydra(overrides if order == "after" else overrides[::-1])
    assert cfg.trainer.epochs == 1 and cfg.trainer.limit_train_batches == 3
    assert cfg.hydra.runtime.choices.trainer == "debug"
    assert compose_with_hydra(["hparams_search=optuna"]).trainer.epochs == 6  # its own default


@pytest.mark.slow
def test_model_comparison_sweeps_four_models_that_all_compose():
    cfg = compose_config(["+experiment=model_comparison"])
    # compose() leaves out the sweeper's params: read them from the preset itself
    preset = yaml.safe_load((Path(CONFIG_DIR) / "experiment" / "model_comparison.yaml").read_text())
    choices = preset["hydra"]["sweeper"]["params"]["model"].split(",")
    assert choices == ["unet", "unet_pretrained", "smp_unet", "deeplabv3"]
    for choice in choices:
        composed = compose_config(["+experiment=model_comparison", f"model={choice}"])
        assert composed.trainer.epochs <= 3 and composed.dataset.train.num_samples <= 200
    assert cfg.dataset.name == "synthetic"
