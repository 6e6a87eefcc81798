"""The final test pass as a run scores it: its inference options (test-time augmentation, tiles),
post-processing and per-image scores. fit runs it over the whole split; a budgeted run times its
first batch before training, to reserve what it really costs."""

import time

from segexp.evaluation.loop import Scoring, evaluate
from segexp.evaluation.pipeline import test_options
from segexp.evaluation.postprocess import build_postprocess
from segexp.metrics.per_image import PerImageScores


def score_test(exp, num_batches: int, desc: str = "test") -> tuple[Scoring, PerImageScores]:
    """Score ``num_batches`` batches of the test split with the model as it is now."""
    test_cfg = exp.cfg.get("test") or {}
    per_image = PerImageScores(int(exp.cfg.dataset.num_classes), exp.metrics.ignore_index)
    postprocess = build_postprocess(test_cfg.get("postprocess"))
    scoring = Scoring(exp.metrics, postprocess=postprocess, on_sample=per_image)
    evaluate(
        exp.eval_model, exp.splits.test, exp.dev, scoring,
        num_batches=num_batches, options=test_options(exp.cfg), desc=desc,
    )  # fmt: skip
    return scoring, per_image


def test_image_seconds(exp) -> float:
    """Seconds per image of the test pass, timed on its first batch; a first, untimed pass
    starts the loader's workers, which are persistent and serve the final pass too."""
    score_test(exp, 1, desc="test probe")
    start = time.perf_counter()
    _, per_image = score_test(exp, 1, desc="test probe")
    seconds = time.perf_counter() - start
    exp.model.train()
    return seconds / max(1, len(per_image.arrays()[0]))
