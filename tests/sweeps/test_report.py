"""The report of a search: one sweep folder, or the folders of one study's processes gathered
under one (one per machine)."""

from segexp.sweeps.report import is_search


def test_a_search_is_known_by_its_folder_or_the_folders_gathered_under_it(tmp_path):
    (tmp_path / "plain" / "0_aug=none").mkdir(parents=True)
    (tmp_path / "plain" / "multirun.yaml").write_text("hydra:\n  sweeper:\n    params: {}\n")
    assert not is_search(tmp_path / "plain")
    (tmp_path / "one" / "0_optimizer.lr=0.001").mkdir(parents=True)
    (tmp_path / "one" / "optimization_results.yaml").write_text("name: optuna\n")
    assert is_search(tmp_path / "one")
    for machine in ("host_a", "host_b"):  # copied together from two machines
        (tmp_path / "study" / machine / "3_optimizer.lr=0.01").mkdir(parents=True)
        (tmp_path / "study" / machine / "multirun.yaml").write_text(
            "hydra:\n  sweeper:\n    _target_: hydra_plugins.segexp_sweeper.x.StudySweeper\n"
            "    sampler:\n      _target_: optuna.samplers.TPESampler\n"
        )
    assert is_search(tmp_path / "study")
