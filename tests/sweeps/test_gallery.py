"""The paired picture: the images a variant gains and loses most on, and its confusion shift."""

import csv
import shutil

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from segexp.sweeps.gallery import (
    TILE,
    chosen,
    confusion_difference,
    gallery_grid,
    write_gallery,
)
from segexp.sweeps.intervals import miou_rows
from segexp.sweeps.jobs import Variant, load_job
from segexp.sweeps.paired import compare_variants
from segexp.visual.colours import colorize, dataset_palette
from segexp.visual.legend import LINE


def test_images_are_ranked_by_their_own_miou_gain():
    inter = np.array([[5, 0], [10, 4], [0, 0]])
    union = np.array([[10, 0], [10, 8], [0, 0]])
    assert miou_rows(inter, union)[:2].tolist() == [0.5, 0.75]  # classes in the image only
    assert np.isnan(miou_rows(inter, union)[2])
    gains = np.array([0.1, -0.3, 0.0, 0.2, np.nan, -0.05])
    ids = list("abcdef")
    assert chosen(ids, gains, rows=2) == [("d", 0.2), ("a", 0.1), ("b", -0.3), ("f", -0.05)]


def _variant_of(run_dir, folder, better: int, worse: int):
    """A copy of a finished run whose per-image counts say it gained on image ``better`` and
    lost on ``worse``, and whose kept prediction of ``better`` is the truth itself."""
    shutil.copytree(run_dir, folder)
    rows = list(csv.reader((folder / "per_image.csv").open()))
    header, body = rows[0], rows[1:]
    for index, factor in ((better, 1.0), (worse, 0.0)):
        for c in range(1, len(header), 2):  # inter = union (all right) or 0 (all wrong)
            body[index][c] = str(int(int(body[index][c + 1]) * factor))
    with (folder / "per_image.csv").open("w", newline="") as f:
        csv.writer(f).writerows([header, *body])
    return [row[0] for row in body]


@pytest.mark.slow
def test_the_gallery_shows_image_truth_baseline_and_variant_of_the_images_that_changed(
    run_dir, tmp_path
):
    base_dir = tmp_path / "base"
    shutil.copytree(run_dir, base_dir)
    ids = _variant_of(run_dir, tmp_path / "variant", better=2, worse=5)
    base, other = (load_job(tmp_path / name, tmp_path) for name in ("base", "variant"))
    comparison = compare_variants(
        Variant("a", {}, [base]), Variant("b", {}, [other]), 50, factor="variant"
    )
    rows = chosen(ids, np.array([0.0] * len(ids)) + np.eye(len(ids))[2] - np.eye(len(ids))[5])
    assert [image for image, _ in rows] == [ids[2], ids[5]]
    grid = gallery_grid(comparison, rows)
    names = base.summary["test"]["per_class_iou"]
    assert grid.shape[1] == LINE + 2 * TILE + LINE * len(names)  # titles, 2 rows, legend
    assert grid.shape[2] == 4 * TILE  # image, truth, baseline, variant
    # The variant column of the first row is its kept prediction, in the dataset's colours.
    kept = np.array(Image.open(other.path / "predictions" / "test" / f"{ids[2]}.png"))
    up = torch.nn.functional.interpolate(torch.from_numpy(kept)[None, None].float(), size=TILE)
    colours = dataset_palette(OmegaConf.load(base.path / "resolved_config.yaml").dataset)
    expected = colorize(up[0, 0].long(), colours)
    assert torch.equal(grid[:, LINE : LINE + TILE, 3 * TILE :], expected)
    assert not confusion_difference(comparison).any()  # the summaries are the same run's
    made = write_gallery([comparison], tmp_path / "report")
    assert made[0].grid and (tmp_path / "report" / made[0].grid).is_file()
    assert list((tmp_path / "report" / "gallery").glob("events.out.tfevents.*"))
