"""segexp.evaluate, segexp.predict and segexp.export on one tiny trained run."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from segexp import evaluate, export, predict
from segexp.errors import SegexpError
from segexp.inference import InferenceOptions, predict_probs
from segexp.rundir import load_run
from segexp.train import fit

from .conftest import REPO, TINY, compose_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("run")
    fit(compose_config([*TINY, "trainer.epochs=1", "logger=none"]), path)
    return path


@pytest.fixture(scope="module")
def test_folder(run_dir, tmp_path_factory):
    """The run's test split written out as images/ and masks/ PNGs."""
    root = tmp_path_factory.mktemp("folder")
    dataset = load_run(run_dir).cfg.dataset
    from segexp.data.synthetic import SyntheticSegmentation

    split = SyntheticSegmentation("test", dataset.test.num_samples, dataset.image_size)
    for sub in ("images", "masks"):
        (root / sub).mkdir()
    for i in range(len(split)):
        image, mask = split.load(i)
        Image.fromarray(image).save(root / "images" / f"{split.names[i]}.png")
        Image.fromarray(mask).save(root / "masks" / f"{split.names[i]}.png")
    return root


def test_evaluate_reproduces_the_summary_and_writes_its_files(run_dir):
    result = evaluate.main([f"run={run_dir}", "split=test"])
    summary = json.loads((run_dir / "summary.json").read_text())["test"]
    for key, value in summary.items():
        assert result[key] == value, key
    out = run_dir / "checkpoints" / "eval_best_test"
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["mIoU"] == summary["mIoU"]
    assert np.array(on_disk["confusion_matrix"]).sum() == 8 * 32 * 32
    rows = (out / "per_class.csv").read_text().splitlines()
    assert rows[0] == "class,iou,dice" and len(rows) == 6 and rows[2].startswith("disc,")
    with Image.open(out / "confusion.png") as png:
        assert png.size[0] > 100


def test_evaluate_a_folder_with_tta_and_sliding_window(run_dir, test_folder, tmp_path):
    plain = evaluate.main([f"run={run_dir}", f"data={test_folder}", f"output={tmp_path / 'a'}"])
    summary = json.loads((run_dir / "summary.json").read_text())["test"]
    assert plain["mIoU"] == summary["mIoU"] and plain["num_images"] == 8  # the same pictures
    tta = evaluate.main(
        [
            f"run={run_dir}",
            f"data={test_folder}",
            "tta=flip",
            "sliding_window=true",
            "tile=16x16",
            "overlap=0.5",
        ]
    )
    assert tta["tta"] == "flip" and tta["sliding_window"] == {"tile": [16, 16], "overlap": 0.5}
    assert np.array(tta["confusion_matrix"]).sum() == 8 * 32 * 32
    written = run_dir / "checkpoints" / f"eval_best_{test_folder.name}_tta-flip_sliding"
    assert (written / "metrics.json").is_file()


def test_evaluate_bad_arguments_name_the_key(run_dir, tmp_path):
    with pytest.raises(SegexpError, match="unknown argument 'splt=val'"):
        evaluate.main([f"run={run_dir}", "splt=val"])
    with pytest.raises(SegexpError, match="checkpoint=last"):
        evaluate.main([f"run={tmp_path}"])
    with pytest.raises(SegexpError, match="tile=16: write it as HEIGHTxWIDTH"):
        evaluate.main([f"run={run_dir}", "sliding_window=true", "tile=16"])


def test_predict_writes_masks_overlays_and_probabilities(run_dir, tmp_path):
    from segexp.data.synthetic import generate_scene

    inputs = tmp_path / "in"
    inputs.mkdir()
    sizes = {"large": (70, 45), "small": (20, 30)}  # the run trained on 32 x 32
    for i, (stem, (h, w)) in enumerate(sizes.items()):
        image, _ = generate_scene(np.random.default_rng(i), h, w)
        Image.fromarray(image).save(inputs / f"{stem}.png")
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "segexp.predict",
            f"run={run_dir}",
            f"input={inputs}",
            f"output={out}",
            "--save-probs",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "predict" in result.stderr and "2/2" in result.stderr  # the progress bar

    run = load_run(run_dir, device="cpu")
    image = np.asarray(Image.open(inputs / "large.png"))
    normalised, _ = run.dev.batch(
        torch.from_numpy(image.copy()).permute(2, 0, 1)[None], torch.zeros(1)
    )
    expected = predict_probs(run.model, normalised, InferenceOptions(tile=(32, 32)))[0]
    probs = np.load(out / "probs" / "large.npy")
    assert probs.shape == (5, 70, 45) and probs.dtype == np.float16
    assert np.abs(probs.astype(np.float32) - expected.numpy()).max() < 1e-3
    mask = np.asarray(Image.open(out / "masks" / "large.png"))
    agree = (mask == expected.argmax(dim=0).numpy()).mean()
    assert agree > 0.999  # only float16 rounding of near-ties may flip a pixel
    for stem, (h, w) in sizes.items():
        assert np.asarray(Image.open(out / "masks" / f"{stem}.png")).shape == (h, w)
        assert np.asarray(Image.open(out / "overlays" / f"{stem}.png")).shape == (h, w, 3)

    with pytest.raises(SegexpError, match="already exists"):
        predict.main([f"run={run_dir}", f"input={inputs}", f"output={out}"])

    # sliding_window=false: one pass over the whole image.
    whole_out = tmp_path / "whole"
    predict.main([f"run={run_dir}", f"input={inputs / 'small.png'}", f"output={whole_out}",
                  "sliding_window=false", "--save-probs"])  # fmt: skip
    image = np.asarray(Image.open(inputs / "small.png"))
    normalised, _ = run.dev.batch(torch.from_numpy(image.copy()).permute(2, 0, 1)[None],
                                  torch.zeros(1))  # fmt: skip
    expected = predict_probs(run.model, normalised, InferenceOptions())[0]
    probs = np.load(whole_out / "probs" / "small.npy").astype(np.float32)
    assert np.abs(probs - expected.numpy()).max() < 1e-3


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_pytorch_on_uint8_images_of_any_size(run_dir, tmp_path, fmt):
    path = export.main([f"run={run_dir}", f"format={fmt}", f"output={tmp_path / 'model'}"])
    run = load_run(run_dir, device="cpu")
    reference = export.Deployable(run.model, run.cfg.dataset.mean, run.cfg.dataset.std).eval()
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime", reason="the export extra is not installed")
        session = ort.InferenceSession(str(path))
        exported = lambda x: session.run(None, {"image": x.numpy()})[0]  # noqa: E731
    else:
        scripted = torch.jit.load(str(path))
        exported = lambda x: scripted(x).detach().numpy()  # noqa: E731
    for height, width in ((32, 32), (37, 50)):
        images = torch.randint(0, 256, (2, 3, height, width), dtype=torch.uint8)
        with torch.no_grad():
            expected = reference(images).numpy()
            # Normalisation happens inside the graph: the same as normalising by hand.
            by_hand = run.model((images.float() - run.dev.mean) / run.dev.std).numpy()
        got = exported(images)
        assert got.shape == (2, 5, height, width)
        assert np.abs(got - expected).max() < 1e-4
        if height == 32:
            assert np.abs(got - by_hand).max() < 1e-4
    with pytest.raises(SegexpError, match="already exists"):
        export.main([f"run={run_dir}", f"format={fmt}", f"output={path}"])
