"""The final test pass as a run scores it: its inference options (test-time augmentation, tiles),
post-processing and per-image scores. fit runs it over the whole split; a budgeted run times its
first batch before training, to reserve what it really costs."""

import time
from pathlib import Path

from segexp.evaluation.loop import Scoring, evaluate
from segexp.evaluation.outputs import PredictionWriter
from segexp.evaluation.pipeline import test_options
from segexp.evaluation.postprocess import build_postprocess
from segexp.metrics.calibration import Calibration
from segexp.metrics.per_image import PerImageScores
from segexp.runtime import distributed


def score_test(
    exp, num_batches: int, desc: str = "test", run_dir: Path | None = None
) -> tuple[Scoring, PerImageScores]:
    """Score ``num_batches`` batches of the test split with the model as it is now; with
    ``run_dir`` (and ``trainer.save_test_predictions``) the predictions are written there."""
    test_cfg = exp.cfg.get("test") or {}
    num_classes, ignore_index = int(exp.cfg.dataset.num_classes), exp.metrics.ignore_index
    per_image = PerImageScores(num_classes, ignore_index)
    hooks = [per_image]
    # Under torchrun each rank scores a shard: its loader's indices are not the split's.
    if run_dir is not None and exp.trainer.save_test_predictions and distributed.world_size() == 1:
        hooks.append(
            PredictionWriter(run_dir / "predictions" / "test", exp.splits.test.dataset.names)
        )

    def on_sample(index: int, prediction, target) -> None:
        for hook in hooks:
            hook(index, prediction, target)

    scoring = Scoring(
        exp.metrics,
        postprocess=build_postprocess(test_cfg.get("postprocess")),
        on_sample=on_sample,
        calibration=Calibration(num_classes, ignore_index, device=exp.dev.device),
    )
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
