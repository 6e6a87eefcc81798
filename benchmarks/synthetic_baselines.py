"""How hard is the synthetic dataset? Scores of predictors that use no shape at all.

    python benchmarks/synthetic_baselines.py

- constant: every pixel is background (the majority class);
- colour lookup: each pixel's colour, quantised to 16 levels per channel, is mapped to the class
  that colour most often has in the training split: the best any per-pixel colour rule does.
Both are scored like a model (one confusion matrix over the test split) and written to
benchmarks/results/synthetic_baselines.json.
"""

import json
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from segexp.config.build import build, class_names
from segexp.config.paths import CONFIG_DIR
from segexp.metrics.confusion import ConfusionMatrix

LEVELS = 16


def colour_bins(image: np.ndarray) -> np.ndarray:
    q = (image.astype(np.int64) * LEVELS) // 256
    return (q[..., 0] * LEVELS + q[..., 1]) * LEVELS + q[..., 2]


def main() -> None:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["name=baselines"])
    train, test = build(cfg.dataset.train), build(cfg.dataset.test)
    num_classes = int(cfg.dataset.num_classes)

    counts = np.zeros((LEVELS**3, num_classes), np.int64)
    for i in range(len(train)):
        image, mask = train.load(i)
        np.add.at(counts, (colour_bins(image).ravel(), mask.ravel().astype(np.int64)), 1)
    lookup = counts.argmax(axis=1)  # unseen colours fall to class 0, background

    results = {}
    for name, predict in {
        "constant_background": lambda image: np.zeros(image.shape[:2], np.int64),
        "colour_lookup": lambda image: lookup[colour_bins(image)],
    }.items():
        confusion = ConfusionMatrix(num_classes, int(cfg.dataset.ignore_index))
        for i in range(len(test)):
            image, mask = test.load(i)
            confusion.update(
                torch.from_numpy(predict(image)), torch.from_numpy(mask.astype(np.int64))
            )
        results[name] = confusion.compute(class_names(cfg.dataset))
        print(
            f"{name:>20}: test mIoU {results[name]['mIoU']:.3f}  "
            f"pixel acc {results[name]['pixel_acc']:.3f}"
        )
    out = Path(__file__).parent / "results" / "synthetic_baselines.json"
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
