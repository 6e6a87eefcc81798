"""Experiment presets and the search / launcher configs compose into ready sweeps."""

import pytest
from hydra import compose, initialize_config_dir

from segexp.config.paths import CONFIG_DIR


def compose_with_hydra(overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize(
    ("preset", "params"),
    [
        ("aug_ablation", {"aug": "none,strong", "seed": "0,1,2"}),
        ("loss_comparison", {"loss": "ce,dice,focal,combined", "seed": "0,1"}),
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
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert set(sweeper.params) == {
        "optimizer.lr",
        "optimizer.weight_decay",
        "loss.weights.ce",
        "loss.weights.dice",
    }
    assert cfg.loss.weights.ce == 1.0  # the searched keys exist in the composed config


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
