"""Sliding window against whole-image inference for a trained run.

    python benchmarks/inference_checks.py <run folder> [--size 192] [--images 16]

Segments synthetic scenes larger than the training size both ways (tiles of the training size,
overlap 0.5, Gaussian blending) and prints the pixel agreement of the class maps, the largest
probability difference and the mIoU of each. (Whether evaluate, predict and export agree with
each other is benchmarks/drift_checks.py; export checks itself against the model.)
"""

import argparse
from pathlib import Path

import torch

from segexp.data.synthetic import SyntheticSegmentation
from segexp.evaluation.pipeline import InferenceOptions, scores, to_probabilities
from segexp.metrics.confusion import ConfusionMatrix
from segexp.training.experiment import load_run


def probabilities(model, images: torch.Tensor, options: InferenceOptions) -> torch.Tensor:
    return to_probabilities(scores(model, images, options), options)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--images", type=int, default=16)
    args = parser.parse_args()
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
        whole = probabilities(run.model, x, InferenceOptions())
        tiled = probabilities(run.model, x, InferenceOptions(tile=tile, overlap=0.5))
        agree += (whole.argmax(1) == tiled.argmax(1)).sum().item()
        total += y.numel()
        max_diff = max(max_diff, (whole - tiled).abs().max().item())
        whole_cm.update(whole.argmax(1), y)
        tiled_cm.update(tiled.argmax(1), y)
    print(
        f"sliding window ({tile[0]}x{tile[1]} tiles, overlap 0.5) vs whole image on "
        f"{args.images} scenes of {args.size}x{args.size}: class maps agree on "
        f"{agree / total:.4%} of pixels, max |dp| {max_diff:.3f}; mIoU whole "
        f"{whole_cm.compute()['mIoU']:.4f}, sliding {tiled_cm.compute()['mIoU']:.4f}"
    )


if __name__ == "__main__":
    main()
