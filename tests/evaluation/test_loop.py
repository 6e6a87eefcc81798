"""The one evaluation loop: each scoring branch a named function with one return type."""

import torch

from segexp.evaluation.loop import ScoredGroup, score_at_label_sizes, score_at_model_size
from segexp.evaluation.pipeline import InferenceOptions
from segexp.metrics.confusion import ConfusionMatrix


def test_both_scoring_branches_give_lists_and_agree_at_the_models_size():
    generator = torch.Generator().manual_seed(0)
    out = torch.randn(3, 4, 6, 8, generator=generator)
    targets = torch.randint(0, 4, (3, 6, 8), generator=generator)
    at_model, at_labels = ConfusionMatrix(4, 255), ConfusionMatrix(4, 255)
    one = score_at_model_size(out, targets, at_model)
    other = score_at_label_sizes(out, list(targets), at_labels, InferenceOptions())
    for scored in (one, other):
        assert isinstance(scored, ScoredGroup) and isinstance(scored.predictions, list)
        assert [p.shape for p in scored.predictions] == [(6, 8)] * 3
    assert all(torch.equal(a, b) for a, b in zip(one.predictions, other.predictions, strict=True))
    assert torch.equal(at_model.matrix, at_labels.matrix) and at_model.matrix.sum() == 3 * 48


def test_preview_indices_spread_evenly_over_the_scored_samples():
    from segexp.evaluation.loop import preview_indices

    assert preview_indices(4, 8) == [1, 3, 5, 7]  # the middle of each quarter
    assert preview_indices(4, 100) == [12, 37, 62, 87]
    assert preview_indices(1, 9) == [4]
    assert preview_indices(4, 3) == [0, 1, 2]  # fewer samples than asked: every one
    assert preview_indices(0, 50) == [] and preview_indices(4, 0) == []
    for count, total in [(4, 5), (7, 10), (16, 1000), (10, 10)]:
        chosen = preview_indices(count, total)
        # one in each of ``count`` equal parts of the samples
        assert [(2 * index + 1) * count // (2 * total) for index in chosen] == list(range(count))
