"""Numbers for a trained run: evaluate vs summary.json, sliding window vs whole image, ONNX.

    python benchmarks/inference_checks.py <run folder> [--size 192]

1. segexp.evaluate on the run's test split against the test metrics in its summary.json.
2. Sliding-window (tile = training size, overlap 0.5, Gaussian blending) against whole-image
   inference on synthetic scenes larger than the training size: pixel agreement of the class
   maps, largest probability difference, and the mIoU of each.
3. The ONNX export run in onnxruntime against PyTorch: largest absolute logit difference.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from segexp import evaluate, export
from segexp.data.synthetic import SyntheticSegmentation
from segexp.evaluation.pipeline import InferenceOptions, predict_probs
from segexp.metrics.confusion import ConfusionMatrix
from segexp.training.experiment import load_run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--images", type=int, default=16)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="segexp-checks-"))

    summary = json.loads((args.run / "summary.json").read_text())["test"]
    result = evaluate.main([f"run={args.run}", "split=test", f"output={out / 'eval'}"])
    equal = all(result[k] == v for k, v in summary.items())
    print(
        f"1. evaluate vs summary.json (test): mIoU {result['mIoU']!r} vs {summary['mIoU']!r}; "
        f"every metric identical: {equal}"
    )

    run = load_run(args.run, device="cpu")
    cfg = run.cfg
    tile = tuple(int(s) for s in cfg.dataset.image_size)
    scenes = SyntheticSegmentation("test", args.images, (args.size, args.size), seed=123)
    whole_cm, tiled_cm = (ConfusionMatrix(int(cfg.dataset.num_classes)) for _ in range(2))
    agree = total = 0
    max_diff = 0.0
    for i in range(len(scenes)):
        image, mask = scenes[i]
        x, y = run.dev.batch(image[None], mask[None])
        whole = predict_probs(run.model, x, InferenceOptions())
        tiled = predict_probs(run.model, x, InferenceOptions(tile=tile, overlap=0.5))
        agree += (whole.argmax(1) == tiled.argmax(1)).sum().item()
        total += y.numel()
        max_diff = max(max_diff, (whole - tiled).abs().max().item())
        whole_cm.update(whole.argmax(1), y)
        tiled_cm.update(tiled.argmax(1), y)
    print(
        f"2. sliding window ({tile[0]}x{tile[1]} tiles, overlap 0.5) vs whole image on "
        f"{args.images} scenes of {args.size}x{args.size}: class maps agree on "
        f"{agree / total:.4%} of pixels, max |dp| {max_diff:.3f}; mIoU whole "
        f"{whole_cm.compute()['mIoU']:.4f}, sliding {tiled_cm.compute()['mIoU']:.4f}"
    )

    try:
        import onnxruntime as ort
    except ImportError:
        sys.exit("3. skipped: pip install 'segexp[export]'")
    path = export.main([f"run={args.run}", f"output={out / 'model.onnx'}"])
    session = ort.InferenceSession(str(path))
    reference = export.Deployable(run.model, cfg.dataset.mean, cfg.dataset.std).eval()
    worst = 0.0
    for height, width in ((tile[0], tile[1]), (97, 131), (256, 256)):
        images = torch.randint(
            0, 256, (2, int(cfg.dataset.in_channels), height, width), dtype=torch.uint8
        )
        with torch.no_grad():
            expected = reference(images).numpy()
        got = session.run(None, {"image": images.numpy()})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    print(
        f"3. ONNX (onnxruntime) vs PyTorch, sizes {tile}, 97x131, 256x256: "
        f"max |d logit| {worst:.2e}"
    )


if __name__ == "__main__":
    main()
