"""mIoU and mBF1 of one checkpoint under each evaluation option (issue 16), as one table.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/evaluation_options.py <run> [split] [extra ...]

Rows: none, flip, ms_flip (scales 0.75/1/1.25), small_components (on the plain predictions),
crf (on the plain probabilities). Each row is a segexp-evaluate call on the same checkpoint and
split, scored at the labels' own resolution; results are written under /tmp, not the run.
"""

import sys
import tempfile
import time

from hydra import compose, initialize_config_dir

from segexp.config.paths import CONFIG_DIR
from segexp.evaluate import evaluate_run

OPTIONS = {
    "none": [],
    "flip": ["inference.tta=flip"],
    "ms_flip": ["inference.tta=ms_flip"],
    "small_components": ["postprocess=small_components"],
    "crf": ["postprocess=crf"],
}


def main() -> None:
    run, split, *extra = [*sys.argv[1:], "test"][:2] + sys.argv[3:]
    out = tempfile.mkdtemp(prefix="eval_options_")
    print(f"run {run}, split {split}\n")
    print("| option | mIoU | mBF1 | boundary P | boundary R | seconds |")
    print("|---|---|---|---|---|---|")
    for name, overrides in OPTIONS.items():
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(
                "evaluate",
                [f"run={run}", f"split={split}", f"output={out}/{name}", *overrides, *extra],
            )
        started = time.perf_counter()
        result = evaluate_run(cfg)
        seconds = time.perf_counter() - started
        print(
            f"| {name} | {result['mIoU']:.4f} | {result['mBF1']:.4f} | "
            f"{result['boundary_precision']:.4f} | {result['boundary_recall']:.4f} | "
            f"{seconds:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
