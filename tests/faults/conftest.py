"""Helpers shared by the fault tests: a quick run, its one error line, small mask folders."""

from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import TINY

QUICK = [*TINY, "logger=none", "trainer.num_preview_images=0"]


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "ERROR" in line]


def one_error(capsys, *parts: str) -> str:
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text
    errors = error_lines(text)
    assert len(errors) == 1, text[-3000:]
    for part in parts:
        assert part in errors[0], errors[0]
    return errors[0]


def folder(root: Path, masks: dict[str, np.ndarray], images: list[str] | None = None) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for name in images or [f"{Path(n).stem}.png" for n in masks]:
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "images" / name)
    for name, mask in masks.items():
        Image.fromarray(mask).save(root / "masks" / name, quality=75)
    return root


def blob(levels=(0, 255)) -> np.ndarray:
    mask = np.full((16, 16), levels[0], np.uint8)
    mask[4:12, 4:12] = levels[1]
    if len(levels) > 2:
        mask[6:8, 6:8] = levels[2]
    return mask
