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
