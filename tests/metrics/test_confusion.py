"""ConfusionMatrix against an independent computation: ignore_index, errors, all-reduce."""

import math
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from segexp.metrics.confusion import ConfusionMatrix

IGNORE = 255


def reference_metrics(predictions, targets, num_classes: int) -> dict:
    """Independent computation from boolean masks over the whole split, class by class."""
    prediction = np.concatenate([p.numpy().ravel() for p in predictions])
    target = np.concatenate([t.numpy().ravel() for t in targets])
    labelled = target != IGNORE
    prediction, target = prediction[labelled], target[labelled]

    iou, dice, recall = [], [], []
    for c in range(num_classes):
        is_truth, is_predicted = target == c, prediction == c
        intersection = np.logical_and(is_truth, is_predicted).sum()
        union = np.logical_or(is_truth, is_predicted).sum()
        size_sum = is_truth.sum() + is_predicted.sum()
        iou.append(intersection / union if union else math.nan)
        dice.append(2 * intersection / size_sum if size_sum else math.nan)
        if is_truth.any():
            recall.append(intersection / is_truth.sum())
    return {
        "mIoU": np.nanmean(iou),
        "mDice": np.nanmean(dice),
        "pixel_acc": np.mean(prediction == target),
        "mean_class_acc": np.mean(recall),
        "per_class_iou": iou,
        "per_class_dice": dice,
    }


def random_batches(seed: int, num_batches: int, num_classes: int):
    """Class maps; the last class never occurs, the one before it only in predictions."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(num_batches):
        target = torch.randint(0, num_classes - 2, (2, 7, 9), generator=generator)
        prediction = torch.where(
            torch.rand(2, 7, 9, generator=generator) < 0.6,
            target,
            torch.randint(0, num_classes - 1, (2, 7, 9), generator=generator),
        )
        target[torch.rand(2, 7, 9, generator=generator) < 0.2] = IGNORE
        batches.append((prediction, target))
    return batches


def assert_matches(result: dict, expected: dict, class_names: list[str]) -> None:
    for key in ("mIoU", "mDice", "pixel_acc", "mean_class_acc"):
        assert isinstance(result[key], float)
        assert result[key] == pytest.approx(expected[key], rel=1e-12), key
    for key in ("per_class_iou", "per_class_dice"):
        assert list(result[key]) == class_names
        assert list(result[key].values()) == pytest.approx(expected[key], rel=1e-12, nan_ok=True)


def test_matches_independent_computation_on_random_data():
    batches = random_batches(seed=0, num_batches=3, num_classes=6)
    metric = ConfusionMatrix(num_classes=6)
    for prediction, target in batches:
        metric.update(prediction, target)

    result = metric.compute()

    expected = reference_metrics(*zip(*batches, strict=True), num_classes=6)
    assert_matches(result, expected, [str(c) for c in range(6)])
    assert math.isnan(result["per_class_iou"]["5"])
    assert result["per_class_iou"]["4"] == 0.0  # predicted but never true


def test_matrix_rows_are_ground_truth_and_columns_prediction():
    metric = ConfusionMatrix(num_classes=3)
    metric.update(torch.tensor([2, 2, 1, 0]), torch.tensor([0, 0, 1, IGNORE]))
    assert metric.matrix.tolist() == [[0, 0, 2], [0, 1, 0], [0, 0, 0]]
    assert metric.matrix.dtype == torch.int64


def test_accumulating_batches_equals_one_update_on_their_concatenation():
    batches = random_batches(seed=1, num_batches=4, num_classes=5)
    accumulated, at_once = ConfusionMatrix(5), ConfusionMatrix(5)
    for prediction, target in batches:
        accumulated.update(prediction, target)
    at_once.update(*(torch.cat(maps) for maps in zip(*batches, strict=True)))

    assert torch.equal(accumulated.matrix, at_once.matrix)
    assert accumulated.compute()["mIoU"] == at_once.compute()["mIoU"]


def test_split_miou_is_not_the_average_of_batch_mious():
    # Batch A: class 0 with one pixel wrongly called 1 -> IoU0 = 3/4, IoU1 = 0, mIoU 0.375.
    # Batch B: class 1 only, all right -> IoU1 = 1, class 0 absent, mIoU 1.
    # Split: IoU0 = 3/4, IoU1 = 2/3 -> mIoU 17/24, whereas the batch average is 0.6875.
    batch_a = (torch.tensor([0, 0, 0, 1]), torch.tensor([0, 0, 0, 0]))
    batch_b = (torch.tensor([1, 1]), torch.tensor([1, 1]))
    metric = ConfusionMatrix(num_classes=2)
    metric.update(*batch_a)
    metric.update(*batch_b)
    assert metric.compute()["mIoU"] == pytest.approx(17 / 24)

    per_batch = []
    for batch in (batch_a, batch_b):
        single = ConfusionMatrix(num_classes=2)
        single.update(*batch)
        per_batch.append(single.compute()["mIoU"])
    assert per_batch == pytest.approx([0.375, 1.0])
    assert np.mean(per_batch) != pytest.approx(17 / 24)


def test_absent_class_is_nan_and_left_out_of_the_means():
    metric = ConfusionMatrix(num_classes=3)
    metric.update(torch.tensor([[0, 1, 1, 1]]), torch.tensor([[0, 0, 1, 1]]))
    result = metric.compute(class_names=["road", "car", "sky"])

    # road: IoU 1/2, Dice 2/3, recall 1/2; car: IoU 2/3, Dice 4/5, recall 1; sky absent.
    assert result["per_class_iou"]["road"] == pytest.approx(1 / 2)
    assert result["per_class_iou"]["car"] == pytest.approx(2 / 3)
    assert math.isnan(result["per_class_iou"]["sky"])
    assert math.isnan(result["per_class_dice"]["sky"])
    assert result["mIoU"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert result["mDice"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert result["mean_class_acc"] == pytest.approx((1 / 2 + 1) / 2)
    assert result["pixel_acc"] == pytest.approx(3 / 4)


def test_perfect_prediction_scores_one_everywhere():
    target = torch.tensor([[0, 1, 2], [2, 1, IGNORE]])
    prediction = torch.tensor([[0, 1, 2], [2, 1, 0]])  # wrong only where ignored
    metric = ConfusionMatrix(num_classes=3)
    metric.update(prediction, target)
    result = metric.compute()
    assert [result[k] for k in ("mIoU", "mDice", "pixel_acc", "mean_class_acc")] == [1.0] * 4
    assert list(result["per_class_iou"].values()) == [1.0] * 3
    assert list(result["per_class_dice"].values()) == [1.0] * 3


def test_narrow_integer_maps_do_not_overflow_the_cell_index():
    # With uint8, 19 * 20 + 19 would wrap around; the accumulator must widen first.
    metric = ConfusionMatrix(num_classes=20)
    metric.update(
        torch.tensor([19, 3], dtype=torch.uint8), torch.tensor([19, 3], dtype=torch.uint8)
    )
    assert metric.matrix[19, 19].item() == 1
    assert metric.matrix.sum().item() == 2


def test_reset_clears_counts_and_recorded_errors():
    metric = ConfusionMatrix(num_classes=2)
    metric.update(torch.tensor([0, 1]), torch.tensor([0, 7]))
    metric.reset()
    metric.update(torch.tensor([1]), torch.tensor([1]))
    assert metric.matrix.tolist() == [[0, 0], [0, 1]]
    assert metric.compute()["pixel_acc"] == 1.0


def test_out_of_range_targets_raise_at_compute_naming_the_values():
    metric = ConfusionMatrix(num_classes=3)
    metric.update(torch.tensor([0, 1, 2, 0]), torch.tensor([0, 3, 7, IGNORE]))  # no raise here
    metric.update(torch.tensor([0]), torch.tensor([-1]))
    with pytest.raises(ValueError, match=r"3 pixel\(s\) with target values from -1 to 7"):
        metric.compute()
    assert metric.matrix.sum().item() == 1  # the bad pixels were not counted


def test_out_of_range_predictions_raise_but_not_where_the_target_is_ignored():
    metric = ConfusionMatrix(num_classes=3)
    metric.update(torch.tensor([5, 9]), torch.tensor([IGNORE, 1]))
    with pytest.raises(ValueError, match=r"1 pixel\(s\) with prediction values from 9 to 9"):
        metric.compute()


@pytest.mark.parametrize("ignore_index", [255, -1, 0, 2, 3, 9])
def test_matrix_and_errors_match_a_per_pixel_reference_for_any_ignore_index(ignore_index):
    num_classes = 3
    generator = torch.Generator().manual_seed(ignore_index + 10)
    target = torch.randint(-3, 8, (400,), generator=generator)
    target[torch.rand(400, generator=generator) < 0.3] = ignore_index
    prediction = torch.randint(-2, 6, (400,), generator=generator)
    metric = ConfusionMatrix(num_classes, ignore_index)
    metric.update(prediction, target)

    expected = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    bad = {"target": [], "prediction": []}
    for t, p in zip(target.tolist(), prediction.tolist(), strict=True):
        if t == ignore_index:
            continue
        t_ok, p_ok = 0 <= t < num_classes, 0 <= p < num_classes
        bad["target"] += [] if t_ok else [t]
        bad["prediction"] += [] if p_ok else [p]
        if t_ok and p_ok:
            expected[t, p] += 1
    assert torch.equal(metric.matrix, expected)
    expected_problems = [
        f"{len(values)} pixel(s) with {source} values from {min(values)} to {max(values)}"
        for source, values in bad.items()
    ]
    with pytest.raises(ValueError) as error:
        metric.compute()
    assert str(error.value).endswith("; ".join(expected_problems))


def test_rejects_mismatched_shapes_scores_and_wrong_number_of_names():
    metric = ConfusionMatrix(num_classes=2)
    with pytest.raises(ValueError, match="differ"):
        metric.update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        metric.update(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="3 class names"):
        metric.compute(class_names=["a", "b", "c"])


def test_all_reduce_is_a_no_op_without_a_process_group():
    metric = ConfusionMatrix(num_classes=2)
    metric.update(torch.tensor([0, 1]), torch.tensor([0, 0]))
    metric.all_reduce()
    assert metric.matrix.tolist() == [[1, 1], [0, 0]]


def _all_reduce_worker(rank: int, port: int, world_size: int, results) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    try:
        metric = ConfusionMatrix(num_classes=2)
        if rank == 0:
            metric.update(torch.tensor([0, 1]), torch.tensor([0, 0]))
        else:
            metric.update(torch.tensor([1, 1, 0]), torch.tensor([1, 4, 6]))
        metric.all_reduce()
        try:
            metric.compute()
            message = "no error"
        except ValueError as error:
            message = str(error)
        results[rank] = (metric.matrix.tolist(), message)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_all_reduce_sums_matrices_and_errors_across_processes():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with mp.Manager() as manager:
        shared = manager.dict()
        # fork, not spawn: re-importing torch in two children would take seconds.
        mp.start_processes(_all_reduce_worker, (port, 2, shared), nprocs=2, start_method="fork")
        results = dict(shared)

    for rank in (0, 1):
        matrix, message = results[rank]
        assert matrix == [[1, 1], [0, 1]]
        assert "2 pixel(s) with target values from 4 to 6" in message
