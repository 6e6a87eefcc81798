"""HParams values: nulls as empty cells, and a key's numbers of one type."""

from tests.conftest import TINY, compose_config


def test_hparams_nulls_are_empty_cells_and_mixed_numbers_one_type():
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    from segexp.training.loggers.hparams import experiment_summary, hparam_values, override_value

    cfg = compose_config([*TINY, "trainer.ema.decay=null", "optimizer.lr=1"])
    info = {"overrides": ["trainer.ema.decay=null", "optimizer.lr=1", "seed=2"], "choices": {}}
    assert hparam_values(cfg, info) == {"seed": "0", "trainer.ema.decay": None, "optimizer.lr": 1}
    assert [override_value(o) for o in info["overrides"]] == [None, 1, "2"]

    summary = experiment_summary(
        {"trainer.ema.decay": [None, 0.995], "optimizer.lr": [1, 0.5], "name": [None]}, ["m"]
    )
    content = summary.value[0].metadata.plugin_data.content
    infos = HParamsPluginData.FromString(content).experiment.hparam_infos
    domains = {h.name: [v.number_value for v in h.domain_discrete.values] for h in infos}
    assert domains == {"trainer.ema.decay": [0.995], "optimizer.lr": [0.5, 1.0]}


def test_every_choice_and_override_has_one_name_every_logger_accepts(tmp_path):
    from mlflow.utils.validation import _validate_param_name

    from segexp.sweeps.jobs import Job
    from segexp.sweeps.report import swept_values
    from segexp.training.loggers.hparams import hparam_name, hparam_values

    # Hydra's own names for the final test pass's groups, as the command line gives them.
    choices = {
        "postprocess@test.postprocess": "small_components",
        "inference@test.inference": "default",
    }
    overrides = [
        "postprocess@test.postprocess=small_components", "test.postprocess.min_size=4", "+x$y=1"
    ]  # fmt: skip
    cfg = compose_config([*TINY, *overrides[:2]])
    values = hparam_values(cfg, {"choices": {"model": "unet", **choices}, "overrides": overrides})
    assert values == {
        "seed": "0", "model": "unet", "test.postprocess": "small_components",
        "test.inference": "default", "test.postprocess.min_size": 4, "x_y": 1,
    }  # fmt: skip
    for name in values:
        _validate_param_name(name)  # MLflow's own check: raises on a name it refuses
    assert hparam_name("experiment@_global_") == "experiment"
    assert hparam_name("net@_global_.model.net") == "model.net"
    # The sweep's HParams record names its columns as the jobs' sessions do.
    jobs = [
        Job(str(i), tmp_path, [f"postprocess@test.postprocess={choice}"], "0", "completed")
        for i, choice in enumerate(("none", "crf"))
    ]
    assert swept_values(jobs) == {"test.postprocess": ["none", "crf"]}
