"""The metrics table printed at the end of a run and by segexp.evaluate."""

import math
from typing import Any


def _fmt(value: float | None) -> str:
    return "  -   " if value is None or math.isnan(value) else f"{value:6.3f}"


def metrics_table(splits: dict[str, dict[str, Any]]) -> str:
    """Rows: each class, then the means; columns: IoU and Dice of each split."""
    names = list(next(iter(splits.values()))["per_class_iou"])
    width = max(12, *(len(n) for n in names))
    header = f"{'class':<{width}}" + "".join(f"  {s + ' IoU':>8}  {s + ' Dice':>9}" for s in splits)
    lines = [header, "-" * len(header)]
    for name in names:
        cells = "".join(
            f"  {_fmt(m['per_class_iou'][name]):>8}  {_fmt(m['per_class_dice'][name]):>9}"
            for m in splits.values()
        )
        lines.append(f"{name:<{width}}{cells}")
    lines.append("-" * len(header))
    lines.append(
        f"{'mean':<{width}}"
        + "".join(f"  {_fmt(m['mIoU']):>8}  {_fmt(m['mDice']):>9}" for m in splits.values())
    )
    lines.append(
        f"{'pixel acc':<{width}}"
        + "".join(f"  {_fmt(m['pixel_acc']):>8}  {'':>9}" for m in splits.values())
    )
    if all("mBF1" in m for m in splits.values()):
        lines.append(
            f"{'boundary F1':<{width}}"
            + "".join(f"  {_fmt(m['mBF1']):>8}  {'':>9}" for m in splits.values())
        )
    return "\n".join(lines)
