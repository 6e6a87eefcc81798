"""Steps of fit(): the validation preview shows samples spread over what the pass scores."""

import pytest
import torch

from segexp.training.experiment import build_experiment
from segexp.training.fit import validate_epoch
from segexp.training.loggers.fanout import Writers
from segexp.visual.legend import LINE


class Images:
    """A logger that keeps the images it is given."""

    def __init__(self) -> None:
        self.images: dict[str, list[torch.Tensor]] = {}

    def add_image(self, tag, image, step=None):
        self.images.setdefault(tag, []).append(torch.as_tensor(image))

    def add_scalar(self, tag, value, step=None):
        pass


@pytest.mark.slow  # two validation passes with their confusion figures
def test_the_val_grid_shows_samples_spread_over_the_scored_ones_every_epoch(tiny_config):
    # 12 val samples in batches of 4; the pass scores the first 2 batches (8 samples)
    cfg = tiny_config(
        "dataset.val.num_samples=12", "trainer.limit_val_batches=2",
        "trainer.num_preview_images=4",
    )  # fmt: skip
    exp = build_experiment(cfg)
    logger = Images()
    for epoch in (1, 2):
        validate_epoch(exp, epoch, Writers({"images": logger}))
    scored = [image for images, _ in exp.splits.val for image in images][:8]
    first, second = logger.images["visuals/val_image_truth_prediction"]
    assert torch.equal(first, second)  # the same samples every epoch
    height, width = scored[0].shape[-2:]
    rows = [first[:, LINE + r * height : LINE + (r + 1) * height, :width] for r in range(4)]
    shown = [next(i for i, image in enumerate(scored) if torch.equal(image, row)) for row in rows]
    assert shown == [1, 3, 5, 7]  # image / truth / prediction rows of samples 1, 3, 5 and 7
