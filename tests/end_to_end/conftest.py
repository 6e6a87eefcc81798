"""Helpers shared by the end-to-end tests."""

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def tensorboard_tags(run_dir: Path) -> dict[str, list[str]]:
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events.Tags()
