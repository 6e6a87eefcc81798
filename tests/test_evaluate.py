"""segexp.evaluate: the final test pass reproduced, folders, TTA and post-processing, refusals.

A prediction for an image is the same from the final test pass, evaluate and predict; every tool
reads files as training does and refuses what it refuses, with the same message.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from segexp.config.build import build
from segexp.data.synthetic import SyntheticSegmentation
from segexp.errors import SegexpError
from segexp.training.experiment import load_run
from tests.conftest import TINY, compose_config, evaluate_tool, run_cli, speckled_run, write_split

pytestmark = pytest.mark.slow


def test_evaluate_reproduces_the_final_test_pass_and_writes_its_files(run_dir):
    result = evaluate_tool(f"run={run_dir}", "split=test")
    summary = json.loads((run_dir / "summary.json").read_text())
    on_disk = json.loads((run_dir / "checkpoints" / "eval_best_test" / "metrics.json").read_text())
    for key, value in summary["test"].items():
        assert on_disk[key] == value, key  # as written: NaN (no predicted edge) is null
    assert result["mIoU"] == summary["test"]["mIoU"]
    assert summary["scored_at"]["test"].startswith("the labels' own resolution")
    out = run_dir / "checkpoints" / "eval_best_test"
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["mIoU"] == summary["test"]["mIoU"]
    assert np.array(on_disk["confusion_matrix"]).sum() == 8 * 32 * 32
    rows = (out / "per_class.csv").read_text().splitlines()
    assert rows[0] == "class,iou,dice,bf1" and len(rows) == 6 and rows[2].startswith("disc,")
    with Image.open(out / "confusion.png") as png:
        assert png.size[0] > 100
    with Image.open(out / "reliability.png") as png:
        assert png.size[0] > 100
    assert 0 <= on_disk["ece"] <= 1 and len(on_disk["reliability"]["count"]) == 15
    assert 0 <= on_disk["mBF1"] <= 1 and on_disk["mBF1"] == summary["test"]["mBF1"]


def test_evaluate_reports_metrics_with_and_without_postprocessing(tmp_path):
    run_dir = speckled_run(tmp_path / "run")
    plain = evaluate_tool(f"run={run_dir}", f"output={tmp_path / 'plain'}")
    post = evaluate_tool(
        f"run={run_dir}", "postprocess=small_components", "postprocess.min_size=8",
        "save_predictions=true", "inference.tta=ms_flip", "inference.scales=[1.0,1.5]",
    )  # fmt: skip
    out = run_dir / "checkpoints" / "eval_best_test_tta-ms_flip_post-small_components"
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["postprocess"]["min_size"] == 8 and on_disk["inference"]["tta"] == "ms_flip"
    without = on_disk["without_postprocess"]
    assert without["mIoU"] != plain["mIoU"]  # ms_flip changed the model's own predictions...
    assert on_disk["mIoU"] != without["mIoU"]  # ...and post-processing changed them again
    # the predictions written are the post-processed ones: rescoring them gives the top level
    names = sorted(p.stem for p in (out / "predictions").glob("*.png"))
    masks = load_run(run_dir, device="cpu").cfg.dataset
    data = SyntheticSegmentation("test", masks.test.num_samples, masks.image_size)
    matrix = np.zeros((5, 5), dtype=np.int64)
    for i, name in enumerate(data.names):
        assert name in names
        predicted = np.array(Image.open(out / "predictions" / f"{name}.png"), dtype=np.int64)
        truth = data.load(i)[1].astype(np.int64)
        matrix += np.bincount(truth.ravel() * 5 + predicted.ravel(), minlength=25).reshape(5, 5)
    assert matrix.tolist() == post["confusion_matrix"]


def test_evaluate_a_folder_equals_the_split_and_takes_tta_and_tiles(run_dir, tmp_path):
    folder = tmp_path / "folder"
    write_split(load_run(run_dir, device="cpu"), "test", folder)
    plain = evaluate_tool(f"run={run_dir}", f"data={folder}", f"output={tmp_path / 'a'}")
    summary = json.loads((run_dir / "summary.json").read_text())["test"]
    assert plain["mIoU"] == summary["mIoU"] and plain["num_images"] == 8  # the same pictures
    tta = evaluate_tool(
        f"run={run_dir}", f"data={folder}", "inference.tta=flip", "inference.tile=[16,16]"
    )
    assert tta["inference"]["tta"] == "flip" and tta["inference"]["tile"] == [16, 16]
    assert np.array(tta["confusion_matrix"]).sum() == 8 * 32 * 32
    written = run_dir / "checkpoints" / f"eval_best_{folder.name}_tta-flip_sliding"
    assert (written / "metrics.json").is_file()


def test_scores_at_the_labels_resolution_when_the_evaluation_transform_resizes(resized_run):
    summary = json.loads((resized_run / "summary.json").read_text())
    result = evaluate_tool(f"run={resized_run}", "split=test", "save_predictions=true")
    assert result["mIoU"] == summary["test"]["mIoU"]  # the final test pass is this pipeline
    assert np.array(result["confusion_matrix"]).sum() == 8 * 32 * 32  # not 8 * 16 * 16
    prediction = np.asarray(
        Image.open(resized_run / "checkpoints/eval_best_test/predictions/test_00000.png")
    )
    assert prediction.shape == (32, 32)
    # By hand: the model on the 16 x 16 image, probabilities resized bilinearly to 32 x 32.
    run = load_run(resized_run, device="cpu")
    image, _ = SyntheticSegmentation("test", 8, (32, 32)).load(0)
    resized = build(run.cfg.aug.eval)(image=image)["image"]
    with torch.no_grad():
        logits = run.model(torch.from_numpy(resized).permute(2, 0, 1)[None])
    probs = torch.nn.functional.interpolate(
        logits.softmax(1), size=(32, 32), mode="bilinear", align_corners=False
    )
    assert np.array_equal(prediction, probs.argmax(1)[0].numpy())


def test_evaluate_refuses_masks_that_training_refuses_with_the_same_message(run_dir, tmp_path):
    folder = tmp_path / "binary"
    names = write_split(load_run(run_dir, device="cpu"), "test", folder)
    for name in names:  # foreground stored as 255: what training refuses in index mode
        path = folder / "masks" / f"{name}.png"
        mask = np.asarray(Image.open(path))
        Image.fromarray(((mask > 0) * 255).astype(np.uint8)).save(path)
    with pytest.raises(SegexpError) as refused:
        evaluate_tool(f"run={run_dir}", f"data={folder}")
    message = str(refused.value)
    assert "0 and 255" in message and "dataset.mask_mode=binary" in message
    # Training on the same folder refuses it with the same sentence.
    from segexp.data.checks import preflight

    with pytest.raises(SegexpError) as training:
        preflight(
            compose_config(
                [*TINY[:8], "dataset=folder", f"dataset.root={folder}", "dataset.num_classes=5",
                 "dataset.layout.images=images", "dataset.layout.masks=masks"]
            )
        )  # fmt: skip
    sentence = message[message.index(") and 255 is ignore_index") :]  # after split and file
    assert len(sentence) > 100 and sentence in str(training.value)
    result = evaluate_tool(f"run={run_dir}", f"data={folder}", "dataset.mask_mode=binary")
    assert np.array(result["confusion_matrix"]).sum() == 8 * 32 * 32


def test_tool_options_are_checked_with_one_line(run_dir, tmp_path):
    bad = run_cli(f"run={run_dir}", "splt=val", cwd=tmp_path, module="segexp.evaluate")
    assert bad.returncode == 1 and "splt" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stdout + bad.stderr
    with pytest.raises(SegexpError, match="checkpoint=last"):
        evaluate_tool(f"run={tmp_path}")
    with pytest.raises(SegexpError, match=r"inference.tile=\[16\]"):
        evaluate_tool(f"run={run_dir}", "inference.tile=[16]")
    missing = run_cli(f"run={tmp_path}", cwd=tmp_path, module="segexp.evaluate")
    lines = [line for line in missing.stdout.splitlines() if "ERROR" in line]
    assert missing.returncode == 1 and len(lines) == 1 and "does not exist" in lines[0]
