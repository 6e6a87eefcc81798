"""Bad config: one line naming the key, the value and what is allowed, before anything runs."""

import pytest

from segexp.config.checks import validate
from segexp.data.loaders import build_splits
from segexp.errors import SegexpError
from tests.conftest import TINY, TINY_RUN, compose_config, segexp_cli
from tests.faults.conftest import QUICK, one_error


def test_unset_root_is_named():
    with pytest.raises(SegexpError, match=r"dataset\.root is not set"):
        validate(compose_config(["dataset=folder"]))


BAD_CONFIGS = {
    "missing root": (["dataset=folder"], r"dataset\.root is not set: add dataset\.root="),
    "root not a folder": (["dataset=folder", "dataset.root=/no/such/dir"], r"not a folder"),
    "ignore_index in range": (
        ["dataset.ignore_index=1"],
        r"ignore_index=1 is not allowed: .*not a class index",
    ),
    "model channels": (
        ["model.net.in_channels=1"],
        r"model\.net\.in_channels=1 but .*in_channels=3",
    ),
    "unknown encoder": (
        ["model=smp_unet", "model.net.encoder_name=resnt34"],
        r"encoder_name=resnt34 .*resnet34",
    ),
    "unknown precision": (["trainer.precision=fp8"], r"trainer\.precision='fp8'"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_is_one_line_naming_the_key(case):
    overrides, message = BAD_CONFIGS[case]
    tiny = [o for o in TINY_RUN if "model=" not in "".join(overrides) or not o.startswith("model.")]
    with pytest.raises(SegexpError, match=message) as err:
        validate(compose_config([*tiny, *overrides]))
    assert "\n" not in str(err.value)


def test_batch_larger_than_the_train_split(tiny_config):
    with pytest.raises(SegexpError, match=r"batch_size=4 is larger than the train split \(3"):
        build_splits(tiny_config("dataset.train.num_samples=3"))


# --- one schema: every value's type and range, one line naming key, value, what is allowed

BAD_VALUES = {
    "negative lr": (["optimizer.lr=-0.1"], "optimizer.lr=-0.1"),
    "zero lr": (["optimizer.lr=0"], "optimizer.lr=0"),
    "non-numeric lr": (["optimizer.lr=fast"], "optimizer.lr='fast'"),
    "negative workers": (["dataset.num_workers=-1"], "dataset.num_workers=-1"),
    "class weights too short (ce)": (
        ["loss=ce", "loss.class_weights=[1.0,2.0]"],
        "loss.class_weights=[1.0, 2.0]",
    ),
    "class weights too long (combined)": (
        ["loss.losses.ce.class_weights=[1,1,1,1,1,1]"],
        "loss.losses.ce.class_weights=",
    ),
    "negative class weight": (
        ["loss=ce", "loss.class_weights=[1,1,-1,1,1]"],
        "loss.class_weights=",
    ),
    "ignore index above 255": (["dataset.ignore_index=300"], "dataset.ignore_index=300"),
    "negative ignore index": (["dataset.ignore_index=-5"], "dataset.ignore_index=-5"),
    "zero image size": (["dataset.image_size=[0,32]"], "dataset.image_size=[0, 32]"),
    "zero size divisor": (["model.size_multiple=0"], "model.size_multiple=0"),
    "zero batch size": (["dataset.batch_size=0"], "dataset.batch_size=0"),
    "zero epochs": (["trainer.epochs=0"], "trainer.epochs=0"),
    "train batch limit 0": (["trainer.limit_train_batches=0"], "trainer.limit_train_batches=0"),
    "negative grad clip": (["trainer.grad_clip_norm=-1"], "trainer.grad_clip_norm=-1"),
    "zero std": (["dataset.std=[0,58,58]"], "dataset.std=[0, 58, 58]"),
    "log every 0 steps": (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps=0"),
    "negative warm-up": (["scheduler.warmup_steps=-3"], "scheduler.warmup_steps=-3"),
    "one class": (["dataset.num_classes=1", "dataset.class_names=null"], "num_classes=1"),
    "precision as a number": (["trainer.precision=16"], "trainer.precision='16'"),
    "beta of 1": (["optimizer.betas=[1.0,0.999]"], "optimizer.betas=[1.0, 0.999]"),
    "unknown fused setting": (["trainer.fused_optimizer=maybe"], "trainer.fused_optimizer='maybe'"),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_a_wrong_value_is_one_line_naming_key_value_and_what_is_allowed(case):
    overrides, named = BAD_VALUES[case]
    with pytest.raises(SegexpError) as err:
        validate(compose_config([*TINY, *overrides]))
    message = str(err.value)
    assert named in message and "is not allowed: give " in message and "\n" not in message


def test_right_class_weights_and_auto_pass_the_schema():
    validate(compose_config([*TINY, "loss=ce", "loss.class_weights=[1,2,1,1,0.5]"]))
    validate(compose_config([*TINY, "loss.losses.ce.class_weights=auto"]))


def test_resume_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("x")
    with pytest.raises(SegexpError, match=r"resume=.*notes\.txt.* not allowed: give null or a run"):
        validate(compose_config([*TINY, f"resume={path}"]))


def test_a_typo_in_the_test_pass_is_refused_before_training(tmp_path, capsys):
    """The test pass runs last; its options are checked first (they used to be refused only
    after training and last.pt)."""
    run = tmp_path / "run"
    assert segexp_cli(*QUICK, "test.inference.tta=flp", f"hydra.run.dir={run}") == 1
    one_error(capsys, "test.inference: inference.tta='flp' is not one of none, flip")
    assert not (run / "checkpoints").exists()
