"""The trainer's settings as one typed object: defaults, types and ranges in one definition."""

import dataclasses

import pytest
from hydra.errors import ConfigCompositionException

from segexp.config.schema import RULES
from segexp.config.trainer import (
    EarlyStoppingSettings,
    EmaSettings,
    TrainerSettings,
    trainer_settings,
)
from segexp.errors import SegexpError
from segexp.storage.checkpoint import load_checkpoint
from tests.conftest import REPO, compose_config

LEGACY = REPO / "tests" / "fixtures" / "legacy_run_v0.1" / "checkpoints" / "best.pt"


def test_the_composed_default_is_the_definition_with_the_datasets_length():
    settings = trainer_settings(compose_config([]).trainer)
    # synthetic.yaml: a 60 s budget and no cap in epochs
    assert settings == dataclasses.replace(TrainerSettings(), epochs=None, time_budget="60s")
    assert settings.budget_seconds == 60.0
    isbi = trainer_settings(compose_config(["dataset=isbi2012"]).trainer)
    assert (isbi.epochs, isbi.time_budget) == (17, None)


def test_presets_and_overrides_reach_the_object():
    settings = trainer_settings(
        compose_config(["trainer=debug", "trainer.ema.decay=0.99", "trainer.num_threads=3"]).trainer
    )
    assert (settings.epochs, settings.limit_train_batches, settings.limit_val_batches) == (1, 3, 2)
    assert settings.ema == EmaSettings(decay=0.99, warmup=100)
    assert settings.num_threads == 3


BAD = {
    "epochs": ({"epochs": 0}, "trainer.epochs=0 is not allowed: give an integer >= 1"),
    "device": ({"device": "gpu"}, "trainer.device='gpu'"),
    "precision": ({"precision": "fp8"}, "give auto, bf16, fp16 or fp32"),
    "threads": ({"num_threads": 0}, "trainer.num_threads=0"),
    "threads, text": ({"num_threads": "many"}, "trainer.num_threads='many'"),
    "compile": ({"compile": 3}, "trainer.compile=3"),
    "fused": ({"fused_optimizer": "maybe"}, "trainer.fused_optimizer='maybe'"),
    "clipping": ({"grad_clip_norm": 0}, "trainer.grad_clip_norm=0"),
    "limit": ({"limit_val_batches": 0}, "trainer.limit_val_batches=0"),
    "accumulation": ({"accumulate_grad_batches": 0}, "trainer.accumulate_grad_batches=0"),
    # The two ranges that once disagreed with the code using them: patience 0 was allowed by
    # the schema and refused by EarlyStopping, an EMA decay of 1 allowed and then refused.
    "patience 0": ({"early_stopping": {"patience": 0}}, "trainer.early_stopping.patience=0"),
    "decay 1": ({"ema": {"decay": 1.0}}, "trainer.ema.decay=1.0"),
    "decay 0": ({"ema": {"decay": 0.0}}, "trainer.ema.decay=0.0"),
    "monitor": ({"early_stopping": {"monitor": "val/iou"}}, "val/<mIoU | mDice"),
    "mode": ({"early_stopping": {"mode": "up"}}, "trainer.early_stopping.mode='up'"),
    "unknown key": ({"epoch": 3}, "trainer.epoch: Key 'epoch' not in 'TrainerSettings'"),
    "nested unknown": ({"ema": {"rate": 0.9}}, "trainer.ema.rate"),
    "wrong type": ({"deterministic": "perhaps"}, "trainer.deterministic"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_a_wrong_setting_is_one_line_naming_key_and_value(case):
    values, message = BAD[case]
    with pytest.raises(SegexpError) as err:
        trainer_settings(values)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_objects_check_themselves_when_built_in_code():
    with pytest.raises(SegexpError, match=r"trainer\.early_stopping\.patience=0"):
        EarlyStoppingSettings(patience=0)
    assert EarlyStoppingSettings(patience=1).patience == 1
    with pytest.raises(SegexpError, match=r"trainer\.epochs=-1"):
        dataclasses.replace(TrainerSettings(), epochs=-1)


def test_a_misspelt_key_on_the_command_line_is_refused_by_hydra():
    with pytest.raises(
        ConfigCompositionException, match=r"Could not override 'trainer\.epoch'"
    ) as err:
        compose_config(["trainer.epoch=3"])
    assert "Key 'epoch' not in 'TrainerSettings'" in str(err.value.__cause__)
    with pytest.raises(ConfigCompositionException, match=r"trainer\.epochs=three") as err:
        compose_config(["trainer.epochs=three"])
    assert "could not be converted to Integer" in str(err.value.__cause__)
    with pytest.raises(SegexpError, match="Key 'epoch' not in 'TrainerSettings'"):  # +key: added
        trainer_settings(compose_config(["+trainer.epoch=3"]).trainer)


def test_a_stored_config_of_an_older_version_takes_the_newer_keys_defaults():
    stored = load_checkpoint(LEGACY)["config"]["trainer"]
    assert "accumulate_grad_batches" not in stored and "ema" not in stored
    settings = trainer_settings(stored)
    assert settings.epochs == stored["epochs"] and settings.accumulate_grad_batches == 1
    assert settings.ema.decay is None and settings.early_stopping.patience is None
    assert trainer_settings({**stored, "channels_last": "auto"}).channels_last is False


def test_the_value_schema_holds_no_trainer_rows():
    assert not [rule.key for rule in RULES if rule.key.startswith("trainer")]


@pytest.mark.parametrize(
    "given, seconds",
    [(90, 90.0), ("90s", 90.0), ("30min", 1800.0), ("2h", 7200.0), ("1h30min", 5400.0),
     ("1.5h", 5400.0), (" 45 s ", 45.0)],
)  # fmt: skip
def test_a_time_budget_reads_as_seconds(given, seconds):
    assert trainer_settings({"time_budget": given}).budget_seconds == seconds


def test_a_run_needs_a_length_and_a_wrong_one_is_named():
    with pytest.raises(SegexpError, match=r"trainer\.time_budget='5 parsecs' is not allowed"):
        trainer_settings({"time_budget": "5 parsecs"})
    with pytest.raises(SegexpError, match=r"trainer.max_steps=\[\[1, 100\]\] is not allowed"):
        trainer_settings({"max_steps": [[1, 100]]})  # a plan starts at step 0
    with pytest.raises(SegexpError, match="are all null: give the run a length"):
        trainer_settings({"epochs": None})
    plan = trainer_settings({"epochs": None, "max_steps": [[0, 90], [10, 80], [75, 75]]}).plan
    assert plan == [[0, 90], [10, 80], [75, 75]]
    assert trainer_settings({"max_steps": 12}).plan == [[0, 12]]
