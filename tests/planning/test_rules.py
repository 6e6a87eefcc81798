"""segexp-plan's rules, against a machine whose costs the test sets."""

import pytest

from segexp.errors import SegexpError
from segexp.planning import rules
from segexp.planning.fingerprint import Fingerprint
from segexp.planning.measure import Cost
from tests.conftest import compose_config


class FakeMeter:
    """A step costs ``per_pixel`` seconds per training pixel (crop x batch) plus a fixed part."""

    def __init__(self, per_pixel: float, fixed: float = 0.01) -> None:
        self.per_pixel, self.fixed, self.asked = per_pixel, fixed, []

    def cost(self, crop, batch, test_hw) -> Cost:
        self.asked.append((crop, batch))
        step = self.fixed + self.per_pixel * crop[0] * crop[1] * batch
        return Cost(step, self.per_pixel * test_hw[0] * test_hw[1], None)

    def free_memory(self):
        return None


def fingerprint(**changes) -> Fingerprint:
    values = dict(
        images={"train": 400, "val": 50, "test": 50}, median_hw=(360, 480),
        class_shares=[0.5, 0.3, 0.19, 0.01], class_widths=[90.0, 60.0, 40.0, 20.0],
        ignore_index=255, void_share=None,
        mean=[120.0, 110.0, 100.0], std=[60.0, 58.0, 57.0], palette=None,
    )  # fmt: skip
    return Fingerprint(**{**values, **changes})


def keys(choices) -> dict:
    return {k: v for choice in choices for k, v in choice.keys.items()}


def plan(found: Fingerprint, seconds: float, meter: FakeMeter, budget: str = "5min"):
    cfg = compose_config(["dataset.num_classes=4", "dataset.class_names=null"])
    return rules.plan(cfg, found, seconds, lambda model: meter, budget)


def test_the_largest_resolution_and_crop_at_which_enough_steps_fit(monkeypatch):
    monkeypatch.setattr(rules, "pretrained_available", lambda: True)
    meter = FakeMeter(per_pixel=2e-7)
    found = fingerprint()
    choices = plan(found, 300.0, meter)
    chosen = keys(choices)
    crop = chosen["dataset.image_size"]
    assert all(side % 32 == 0 for side in crop)  # the pretrained encoder's stride
    scale = chosen["dataset.resize"] or 1.0

    # Every larger candidate tried before it fits fewer than MIN_IMAGES images at a batch of 4.
    def images(tried_crop, batch):  # (the test pass left out: at most 2 s of the 300 here)
        step = meter.fixed + meter.per_pixel * tried_crop[0] * tried_crop[1] * batch
        return int(rules.TRAIN_SHARE * 300 / step) * batch

    larger = meter.asked[: meter.asked.index((tuple(crop), 4))]
    assert larger and all(images(c, b) < rules.MIN_IMAGES for c, b in larger)
    assert images(tuple(crop), chosen["dataset.batch_size"]) >= rules.MIN_IMAGES
    batch = chosen["dataset.batch_size"]
    assert chosen["optimizer.lr"] == pytest.approx(3e-3 * batch / 8)
    assert chosen["model"] == "unet_pretrained" and scale in rules.SCALES


def test_a_thin_class_keeps_its_resolution_when_no_size_fits_enough_images(monkeypatch):
    monkeypatch.setattr(rules, "pretrained_available", lambda: True)
    slow = FakeMeter(per_pixel=1e-5)  # MIN_IMAGES fit at no size
    wide = keys(plan(fingerprint(), 300.0, slow))
    assert wide["dataset.resize"] == min(rules.SCALES)
    thin = plan(fingerprint(class_widths=[90.0, 6.0, 40.0, None]), 300.0, FakeMeter(1e-5))
    assert keys(thin)["dataset.resize"] == 0.75  # 6 px x 0.75 = 4.5; x 0.5 = 3, under 4
    why = next(choice.why for choice in thin if choice.name == "resolution")
    assert "1 is 6.0 px wide: a smaller scale would leave it under 4 px" in why


def test_a_fast_machine_keeps_the_whole_image_and_the_fastest_batch(monkeypatch):
    monkeypatch.setattr(rules, "pretrained_available", lambda: False)
    meter = FakeMeter(per_pixel=1e-10, fixed=0.05)  # the fixed part dominates: big batches win
    chosen = keys(plan(fingerprint(), 600.0, meter))
    assert chosen["dataset.resize"] is None and chosen["dataset.image_size"] == [352, 480]
    assert chosen["model"] == "unet" and chosen["model.net.depth"] == "auto"
    cap = int(0.05 * 400 * 360 * 480 // (352 * 480))
    assert chosen["dataset.batch_size"] == min(16, cap) == 16


def test_the_batch_cap_covers_at_most_five_percent_of_the_training_pixels(monkeypatch):
    monkeypatch.setattr(rules, "pretrained_available", lambda: False)
    small = fingerprint(images={"train": 24, "val": 6, "test": 6}, median_hw=(512, 512))
    chosen = keys(plan(small, 600.0, FakeMeter(per_pixel=1e-10, fixed=0.05)))
    assert chosen["dataset.batch_size"] == 2  # 5 % of 24 images is a fraction of one


def test_void_label_rare_classes_palette_and_tta_are_planned(monkeypatch):
    monkeypatch.setattr(rules, "pretrained_available", lambda: False)
    found = fingerprint(ignore_index=11, void_share=0.045, palette=[[0, 0, 0]] * 4)
    chosen = keys(plan(found, 900.0, FakeMeter(per_pixel=1e-8)))
    assert chosen["dataset.ignore_index"] == 11
    assert chosen["dataset.sampler"] == "rare_class"
    assert chosen["loss.losses.ce.class_weights"] == "auto"  # the default loss: CE + Dice
    assert chosen["dataset.palette"] == [[0, 0, 0]] * 4
    assert chosen["test.inference.tta"] == "flip"  # a cheap test pass
    assert chosen["trainer.time_budget"] == "5min" and chosen["trainer.epochs"] is None


def test_a_budget_that_cannot_fit_one_epoch_at_the_smallest_size_is_refused(monkeypatch):
    monkeypatch.setattr(rules, "pretrained_available", lambda: False)
    with pytest.raises(SegexpError, match=r"budget=10s cannot fit one epoch even at the smallest"):
        plan(fingerprint(), 10.0, FakeMeter(per_pixel=1e-5), budget="10s")
