"""Steps of fit(): the validation preview shows samples spread over what the pass scores; the
final test pass keeps its predictions, calibration and evaluation protocol."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from segexp.data.synthetic import SyntheticSegmentation
from segexp.metrics.calibration import ece_rows, read_calibration_csv
from segexp.metrics.per_image import PerImageScores, read_per_image_csv
from segexp.training.experiment import build_experiment
from segexp.training.fit import fit, validate_epoch
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


@pytest.mark.slow
def test_the_test_pass_keeps_predictions_calibration_and_its_protocol(
    run_dir, tiny_config, tmp_path
):
    summary = json.loads((run_dir / "summary.json").read_text())
    ids, names, inter, union = read_per_image_csv(run_dir / "per_image.csv")
    test = SyntheticSegmentation("test", 8, (32, 32))
    recount = PerImageScores(len(names), 255)
    for index, image_id in enumerate(ids):  # the kept predictions are what was scored
        kept = np.array(Image.open(run_dir / "predictions" / "test" / f"{image_id}.png"))
        recount.add(torch.from_numpy(kept)[None], torch.from_numpy(test.load(index)[1])[None])
    assert np.array_equal(recount.arrays()[0], inter) and np.array_equal(recount.arrays()[1], union)
    cal_ids, labelled, gaps = read_calibration_csv(run_dir / "calibration.csv")
    assert cal_ids == ids and labelled.sum() == 8 * 32 * 32
    ece = summary["test"]["ece"]
    assert ece_rows(gaps.sum(0)[None], labelled.sum()[None])[0] == pytest.approx(ece, abs=1e-5)
    assert sum(summary["test"]["reliability"]["count"]) == 8 * 32 * 32
    assert np.array(summary["test"]["confusion_matrix"]).sum() == 8 * 32 * 32
    protocol = summary["protocol"]
    assert protocol["test_files"]["count"] == 8 and protocol["labels"]["ignore_index"] == 255
    assert protocol["resolution"]["eval_resize"] is None
    assert [protocol["trained_on"][s]["count"] for s in ("train", "val")] == [16, 8]
    fit(tiny_config("trainer.epochs=1", "logger=none", "trainer.save_test_predictions=false"),
        tmp_path)  # fmt: skip
    assert not (tmp_path / "predictions").exists() and (tmp_path / "per_image.csv").is_file()
