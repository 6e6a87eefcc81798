"""segexp.predict: masks, overlays and probabilities at any size, as evaluate predicts them."""

import numpy as np
import pytest
import torch
from PIL import Image

from segexp.data.synthetic import generate_scene
from segexp.errors import SegexpError
from segexp.evaluation.pipeline import InferenceOptions, scores, to_probabilities
from segexp.training.experiment import load_run
from tests.conftest import evaluate_tool, predict_tool, run_cli, speckled_run, write_split


def test_predict_post_processes_the_masks_it_writes(tmp_path):
    from segexp.evaluation.postprocess import SmallComponents

    run_dir = speckled_run(tmp_path / "run")
    image = tmp_path / "in" / "scene.png"
    image.parent.mkdir()
    Image.fromarray(generate_scene(np.random.default_rng(3), 40, 48)[0]).save(image)
    predict_tool(f"run={run_dir}", f"input={image}", f"output={tmp_path / 'plain'}")
    predict_tool(f"run={run_dir}", f"input={image}", f"output={tmp_path / 'post'}",
                 "postprocess=small_components", "postprocess.min_size=8")  # fmt: skip
    plain = torch.from_numpy(np.array(Image.open(tmp_path / "plain" / "masks" / "scene.png")))
    post = np.array(Image.open(tmp_path / "post" / "masks" / "scene.png"))
    assert not np.array_equal(post, plain.numpy())
    assert np.array_equal(post, SmallComponents(min_size=8)(plain.long()).numpy())


@pytest.mark.slow
def test_predict_mask_equals_evaluate_prediction_when_the_transform_resizes(resized_run, tmp_path):
    names = write_split(load_run(resized_run, device="cpu"), "test", tmp_path / "data")
    evaluate_tool(
        f"run={resized_run}", f"data={tmp_path / 'data'}", "save_predictions=true",
        f"output={tmp_path / 'eval'}",
    )  # fmt: skip
    predict_tool(
        f"run={resized_run}", f"input={tmp_path / 'data' / 'images'}", f"output={tmp_path / 'pred'}"
    )
    for name in names:
        predicted = np.asarray(Image.open(tmp_path / "pred" / "masks" / f"{name}.png"))
        evaluated = np.asarray(Image.open(tmp_path / "eval" / "predictions" / f"{name}.png"))
        assert predicted.shape == (32, 32) and np.array_equal(predicted, evaluated), name


@pytest.mark.slow
def test_a_16_bit_image_and_its_8_bit_version_give_the_same_mask(run_dir, tmp_path):
    image, _ = generate_scene(np.random.default_rng(3), 40, 48)
    gray8 = image[..., 0]
    (tmp_path / "u8").mkdir()
    (tmp_path / "u16").mkdir()
    Image.fromarray(gray8).convert("RGB").save(tmp_path / "u8" / "a.png")
    Image.fromarray(gray8.astype(np.uint16) * 257).save(tmp_path / "u16" / "a.png")  # I;16
    with Image.open(tmp_path / "u16" / "a.png") as wide:
        assert wide.mode.startswith("I")
    for folder in ("u8", "u16"):
        predict_tool(
            f"run={run_dir}", f"input={tmp_path / folder}", f"output={tmp_path / ('out' + folder)}"
        )
    mask8 = np.asarray(Image.open(tmp_path / "outu8" / "masks" / "a.png"))
    mask16 = np.asarray(Image.open(tmp_path / "outu16" / "masks" / "a.png"))
    assert np.array_equal(mask8, mask16)


@pytest.mark.slow
def test_predict_writes_masks_overlays_and_probabilities_at_each_size(run_dir, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    sizes = {"large": (70, 45), "small": (20, 30)}  # the run trained on 32 x 32
    for i, (stem, (h, w)) in enumerate(sizes.items()):
        image, _ = generate_scene(np.random.default_rng(i), h, w)
        Image.fromarray(image).save(inputs / f"{stem}.png")
    out = tmp_path / "out"
    result = run_cli(
        f"run={run_dir}", f"input={inputs}", f"output={out}", "save_probs=true",
        "inference.tile=[32,32]", cwd=tmp_path, module="segexp.predict",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "2/2" in result.stderr  # the progress bar
    run = load_run(run_dir, device="cpu")
    image = torch.from_numpy(np.asarray(Image.open(inputs / "large.png")).copy())
    options = InferenceOptions(tile=(32, 32))
    expected = to_probabilities(scores(run.model, image.permute(2, 0, 1)[None], options), options)
    probs = np.load(out / "probs" / "large.npy")
    assert probs.shape == (5, 70, 45) and probs.dtype == np.float16
    assert np.abs(probs.astype(np.float32) - expected[0].numpy()).max() < 1e-3
    mask = np.asarray(Image.open(out / "masks" / "large.png"))
    assert np.array_equal(mask, expected[0].argmax(dim=0).numpy())
    for stem, (h, w) in sizes.items():
        assert np.asarray(Image.open(out / "masks" / f"{stem}.png")).shape == (h, w)
        overlay = np.asarray(Image.open(out / "overlays" / f"{stem}.png"))
        assert overlay.shape[1:] == (w, 3) and overlay.shape[0] > h  # the legend below
    with pytest.raises(SegexpError, match="already exists"):
        predict_tool(f"run={run_dir}", f"input={inputs}", f"output={out}")


@pytest.mark.slow
def test_predict_refuses_a_broken_image_before_writing_anything(run_dir, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    image, _ = generate_scene(np.random.default_rng(0), 32, 32)
    Image.fromarray(image).save(inputs / "a.png")
    (inputs / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    with pytest.raises(SegexpError, match=r"cannot read .*b\.png.*Replace or remove"):
        predict_tool(f"run={run_dir}", f"input={inputs}", f"output={tmp_path / 'out'}")
    assert not (tmp_path / "out").exists()
