"""Trial labels rounded for reading, and trials ranked by the objective."""


def test_trial_labels_are_rounded_and_trials_ranked_by_the_objective():
    from segexp.sweeps.jobs import readable
    from segexp.sweeps.table import rank_trials

    assert readable("optimizer.lr=0.0012345678") == "optimizer.lr=0.00123"
    assert readable("loss.weights.ce=1.2345678") == "loss.weights.ce=1.23"
    assert readable("seed=3") == "seed=3" and readable("aug=strong") == "aug=strong"
    rows = [{"variant": n, "val_mIoU_mean": v} for n, v in (("a", 0.2), ("b", 0.5), ("c", 0.3))]
    assert [r["variant"] for r in rank_trials(rows)] == ["b (best)", "c", "a"]
