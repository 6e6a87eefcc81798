"""Run folders and configs you can trust (issue 12): a battery of bad inputs and faults, each
either one clear line naming the key or file and the fix, or the right result; never a
traceback, a silent wrong result or a destroyed record."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from segexp.config.checks import validate
from segexp.data.decode import read_mask
from segexp.data.folder import FolderSegmentation
from segexp.errors import SegexpError
from segexp.storage import checkpoint
from segexp.storage.checkpoint import load_checkpoint, save_checkpoint
from segexp.storage.files import write_json
from segexp.storage.lock import LOCK_NAME, FolderLock
from segexp.training import fit as fit_module
from segexp.training.epoch import TrainedEpoch

from .conftest import REPO, TINY, TINY_RUN, compose_config

QUICK = [*TINY, "logger=none", "trainer.num_preview_images=0"]


def segexp_cli(*args: str) -> int:
    """``python -m segexp ARGS`` in this process (the same path as the console command)."""
    from segexp.train import cli

    argv = sys.argv
    sys.argv = ["segexp", *args]
    try:
        cli()
        return 0
    except SystemExit as err:
        return int(err.code or 0)
    finally:
        sys.argv = argv


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder under ``folder``."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


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


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished two-epoch run made by the command line (with its .hydra/ record)."""
    run = tmp_path_factory.mktemp("finished") / "run"
    assert segexp_cli(*QUICK, f"hydra.run.dir={run}") == 0
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    return run


@pytest.fixture
def finished_copy(finished, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished, copy, symlinks=True)
    return copy


# --- 4. one schema: every value's type and range, one line naming key, value, what is allowed

BAD_VALUES = {
    "negative lr": (["optimizer.lr=-0.1"], "optimizer.lr=-0.1"),
    "zero lr": (["optimizer.lr=0"], "optimizer.lr=0"),
    "non-numeric lr": (["optimizer.lr=fast"], "optimizer.lr='fast'"),
    "negative workers": (["dataset.num_workers=-1"], "dataset.num_workers=-1"),
    "class weights too short (ce)": (
        ["loss=ce", "loss.class_weights=[1.0,2.0]"],
        "loss.class_weights=[1.0, 2.0]",
    ),
    "class weights too long (combined)": (
        ["loss.losses.ce.class_weights=[1,1,1,1,1,1]"],
        "loss.losses.ce.class_weights=",
    ),
    "negative class weight": (
        ["loss=ce", "loss.class_weights=[1,1,-1,1,1]"],
        "loss.class_weights=",
    ),
    "ignore index above 255": (["dataset.ignore_index=300"], "dataset.ignore_index=300"),
    "negative ignore index": (["dataset.ignore_index=-5"], "dataset.ignore_index=-5"),
    "zero image size": (["dataset.image_size=[0,32]"], "dataset.image_size=[0, 32]"),
    "zero size divisor": (["model.size_multiple=0"], "model.size_multiple=0"),
    "zero batch size": (["dataset.batch_size=0"], "dataset.batch_size=0"),
    "zero epochs": (["trainer.epochs=0"], "trainer.epochs=0"),
    "train batch limit 0": (["trainer.limit_train_batches=0"], "trainer.limit_train_batches=0"),
    "negative grad clip": (["trainer.grad_clip_norm=-1"], "trainer.grad_clip_norm=-1"),
    "zero std": (["dataset.std=[0,58,58]"], "dataset.std=[0, 58, 58]"),
    "log every 0 steps": (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps=0"),
    "negative warm-up": (["scheduler.warmup_steps=-3"], "scheduler.warmup_steps=-3"),
    "one class": (["dataset.num_classes=1", "dataset.class_names=null"], "num_classes=1"),
    "precision as a number": (["trainer.precision=16"], "trainer.precision='16'"),
    "beta of 1": (["optimizer.betas=[1.0,0.999]"], "optimizer.betas=[1.0, 0.999]"),
    "unknown fused setting": (["trainer.fused_optimizer=maybe"], "trainer.fused_optimizer='maybe'"),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_a_wrong_value_is_one_line_naming_key_value_and_what_is_allowed(case):
    overrides, named = BAD_VALUES[case]
    with pytest.raises(SegexpError) as err:
        validate(compose_config([*TINY, *overrides]))
    message = str(err.value)
    assert named in message and "is not allowed: give " in message and "\n" not in message


def test_right_class_weights_and_auto_pass_the_schema():
    validate(compose_config([*TINY, "loss=ce", "loss.class_weights=[1,2,1,1,0.5]"]))
    validate(compose_config([*TINY, "loss.losses.ce.class_weights=auto"]))


def test_resume_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("x")
    with pytest.raises(SegexpError, match=r"resume=.*notes\.txt.* not allowed: give null or a run"):
        validate(compose_config([*TINY, f"resume={path}"]))


def test_a_run_that_trained_nothing_is_failed_not_completed(tmp_path, monkeypatch, capsys):
    def no_step(*args, global_step, **kwargs):  # a loop that got no batch
        return TrainedEpoch(float("nan"), 0, global_step)

    monkeypatch.setattr(fit_module, "train_one_epoch", no_step)
    run = tmp_path / "run"
    assert segexp_cli(*QUICK, f"hydra.run.dir={run}") == 1
    one_error(capsys, "epoch 1 ran no optimizer step")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "no optimizer step" in summary["reason"]


# --- 2. a refusal leaves every byte of an existing run folder as it was


REFUSALS = {
    "resume, another model": (["model=smp_unet"], "a resumed run keeps its model"),
    "resume, another width": (["model.net.base_channels=8"], "cannot change on resume"),
    "resume, another seed": (["seed=3"], "seed cannot change on resume"),
    "resume, fewer epochs": (["trainer.epochs=1"], "2 epochs of"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_resume_leaves_the_finished_run_as_it_was(finished_copy, capsys, case):
    overrides, message = REFUSALS[case]
    before = snapshot(finished_copy)
    assert segexp_cli(f"resume={finished_copy}", *overrides) == 1
    one_error(capsys, message)
    assert snapshot(finished_copy) == before


def test_a_new_run_of_another_architecture_in_a_finished_folder_changes_nothing(
    finished_copy, capsys
):
    before = snapshot(finished_copy)
    rc = segexp_cli(*QUICK, "model.net.base_channels=8", f"hydra.run.dir={finished_copy}")
    assert rc == 1
    one_error(capsys, "was written by a different model or optimizer config")
    assert snapshot(finished_copy) == before


@pytest.mark.parametrize("fault", ["truncated", "unsafe"])
def test_a_refused_last_pt_leaves_the_folder_as_it_was(finished_copy, capsys, fault):
    last = finished_copy / "checkpoints" / "last.pt"
    if fault == "truncated":
        last.write_bytes(last.read_bytes()[:300])
    else:
        torch.save({"model": {}, "x": Path("/")}, last)  # a pickled object, not a tensor
    before = snapshot(finished_copy)
    assert segexp_cli(f"resume={finished_copy}") == 1
    one_error(capsys, str(last))
    assert snapshot(finished_copy) == before


def test_a_config_error_in_a_new_folder_is_recorded_there(tmp_path, capsys):
    run = tmp_path / "new"
    assert segexp_cli(*QUICK, "optimizer.lr=-1", f"hydra.run.dir={run}") == 1
    one_error(capsys, "optimizer.lr=-1")
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
    assert not (run / LOCK_NAME).exists()  # released on the failure


# --- 3. resume semantics: listed keys take effect, each resume recorded separately


def lr_points(run: Path) -> dict[int, float]:
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    return {e.step: e.value for e in events.Scalars("train/lr")}


def test_a_new_learning_rate_on_resume_reaches_the_optimizer(tmp_path, capsys):
    run = tmp_path / "run"
    base = [*TINY, "trainer.num_preview_images=0", "trainer.log_every_n_steps=1"]
    assert segexp_cli(*base, "trainer.epochs=1", f"hydra.run.dir={run}") == 0
    assert segexp_cli(f"resume={run}", "trainer.epochs=2", "optimizer.lr=0.3") == 0
    assert segexp_cli(f"resume={run}", "trainer.epochs=3") == 0
    lr = lr_points(run)
    # poly schedule, 2 warm-up steps, 4 steps per epoch: the factor at each step is the same
    # function of the step; only the base changed, from 3e-3 to 0.3 after epoch 1.
    reference = [*base, "trainer.epochs=2", "optimizer.lr=0.3"]
    other = tmp_path / "reference"
    capsys.readouterr()
    assert segexp_cli(*reference, f"hydra.run.dir={other}") == 0
    want = lr_points(other)
    for step in (5, 6, 7, 8):
        assert lr[step] == pytest.approx(want[step], rel=1e-6)  # epoch 2 at the new lr
    assert lr[4] < 3e-3 and lr[5] > 0.01
    summary = json.loads((run / "summary.json").read_text())
    assert "optimizer.lr=0.3" not in summary["overrides"]
    assert summary["resumes"] == [["trainer.epochs=2", "optimizer.lr=0.3"], ["trainer.epochs=3"]]
    assert summary["epochs"] == 3 and summary["status"] == "completed"


# --- 1. one process per run folder and per sweep folder

HOLD = """
import sys, time
from segexp.storage.lock import FolderLock
FolderLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def holder(folder: Path, seconds: float = 60) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), str(seconds)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_run_into_a_held_folder_refuses_at_once_naming_the_holder(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    process = holder(run)
    try:
        before = snapshot(run)
        started = time.perf_counter()
        assert segexp_cli(*QUICK, f"hydra.run.dir={run}") == 1
        assert time.perf_counter() - started < 30  # refused without waiting for the holder
        one_error(capsys, f"run folder {run} is in use by PID {process.pid}")
        assert snapshot(run) == before
    finally:
        process.kill()
        process.wait()


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    process = holder(run)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert str(process.pid) in (run / LOCK_NAME).read_text()  # the stale lock file is there
    assert segexp_cli(*QUICK, "trainer.epochs=1", f"hydra.run.dir={run}") == 0
    assert f"took over the stale lock of PID {process.pid}" in capsys.readouterr().out
    assert not (run / LOCK_NAME).exists()  # released at the end


def test_the_lock_is_exclusive_between_two_opens_and_released(tmp_path):
    first = FolderLock(tmp_path).acquire()
    with pytest.raises(SegexpError, match=f"in use by PID {os.getpid()}"):
        FolderLock(tmp_path).acquire()
    first.release()
    with FolderLock(tmp_path):
        assert (tmp_path / LOCK_NAME).is_file()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_second_sweep_into_a_held_sweep_folder_refuses(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    process = holder(sweep)
    try:
        rc = segexp_cli("--multirun", *QUICK, "seed=0,1", f"hydra.sweep.dir={sweep}")
        assert rc == 1
        out = capsys.readouterr()
        text = out.out + out.err
        lines = [line for line in text.splitlines() if line.strip()]
        assert "Traceback" not in text and len(lines) == 1, text  # Hydra's format: [HYDRA]
        assert f"sweep folder {sweep} is in use by PID {process.pid}" in lines[0]
        assert sorted(p.name for p in sweep.iterdir()) == [LOCK_NAME]  # no job started
    finally:
        process.kill()
        process.wait()


# --- 7. file-system faults: one line naming the path and the fix, earlier files intact


def test_a_run_folder_path_that_is_a_file(tmp_path, capsys):
    path = tmp_path / "taken"
    path.write_text("mine")
    assert segexp_cli(*QUICK, f"hydra.run.dir={path}") == 1
    one_error(capsys, f"{path} is a file, not a folder")
    assert path.read_text() == "mine"
    assert segexp_cli(*QUICK, f"hydra.run.dir={path}/run") == 1
    one_error(capsys, f"{path} is a file, not a folder")


def test_a_read_only_output_folder(tmp_path, capsys, monkeypatch):
    real = os.access
    # Tests may run as root, which writes anywhere: the check asks os.access, as on a read-only
    # file system, where access(2) says no even to root.
    monkeypatch.setattr(os, "access", lambda p, mode: real(p, mode) and Path(p) != tmp_path)
    assert segexp_cli(*QUICK, f"hydra.run.dir={tmp_path}/run") == 1
    one_error(capsys, f"cannot write into {tmp_path} (read-only or permission denied)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "code, fix",
    [
        (errno.ENOSPC, "the disk is full"),
        (errno.EFBIG, "too large"),
        (errno.EROFS, "read-only"),
        (errno.EACCES, "permission denied"),
    ],
)
def test_a_fault_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, code, fix):
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1}, path)

    def failing_save(state, f):
        f.write(b"PK partial")
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    with pytest.raises(SegexpError) as err:
        save_checkpoint({"epoch": 2}, path)
    message = str(err.value)
    assert message.startswith(f"cannot write {path}") and fix in message and "\n" not in message
    monkeypatch.undo()
    assert load_checkpoint(path) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_a_full_disk_during_a_run_is_one_line_and_keeps_epoch_1(tmp_path, monkeypatch, capsys):
    real, calls = torch.save, []

    def full_after_epoch_1(state, f):
        calls.append(state["epoch"])
        if state["epoch"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(state, f)

    monkeypatch.setattr(checkpoint.torch, "save", full_after_epoch_1)
    run = tmp_path / "run"
    assert segexp_cli(*QUICK, f"hydra.run.dir={run}") == 1
    one_error(capsys, "cannot write", "No space left on device", "the disk is full")
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 1
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"


def test_a_fault_in_any_other_write_is_one_line(tmp_path, monkeypatch, capsys):
    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "write_text", read_only)  # resolved_config.yaml, at the start
    run = tmp_path / "run"
    assert segexp_cli(*QUICK, f"hydra.run.dir={run}") == 1
    one_error(capsys, "resolved_config.yaml (Read-only file system): the file system is read-only")


def test_a_record_under_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(
        SegexpError, match=r"cannot write .*file/summary\.json .*a file is in the way"
    ):
        write_json({"a": 1}, tmp_path / "file" / "summary.json")


# --- 8. permissions follow the umask


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o007, 0o660)])
def test_records_and_checkpoints_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_json({"a": 1}, tmp_path / "summary.json")
        save_checkpoint({"w": torch.ones(1)}, tmp_path / "last.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == mode
    assert (tmp_path / "last.pt").stat().st_mode & 0o777 == mode


# --- 5. masks hold the encoding they claim


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


def dataset(root: Path, **kwargs) -> FolderSegmentation:
    return FolderSegmentation("images", "masks", root=root, **kwargs)


def test_a_binary_mask_with_three_levels_is_named(tmp_path):
    data = dataset(folder(tmp_path, {"a.png": blob((0, 255, 128))}), mask_mode="binary")
    with pytest.raises(SegexpError, match=r"mask .*a\.png has 3 levels \(0, 128, 255\)"):
        data.read_mask(0)


def test_a_jpeg_index_mask_is_named_with_the_opt_in(tmp_path):
    data = dataset(folder(tmp_path, {"a.jpg": blob((0, 1))}))
    with pytest.raises(SegexpError, match=r"mask .*a\.jpg is JPEG.*dataset\.lossy_masks=true"):
        data.read_mask(0)


def test_a_jpeg_binary_mask_with_the_opt_in_is_thresholded(tmp_path):
    root = folder(tmp_path, {"a.jpg": blob()})
    with pytest.raises(SegexpError, match="lossy"):
        dataset(root, mask_mode="binary").read_mask(0)
    mask = dataset(root, mask_mode="binary", lossy_masks=True).read_mask(0)
    assert set(np.unique(mask)) == {0, 1}
    assert (mask == (blob() > 0)).mean() > 0.97  # the blob back, not 20% of pixels moved


def test_two_images_with_one_stem_are_named(tmp_path):
    root = folder(tmp_path, {"a.png": blob((0, 1))}, images=["a.png", "a.jpg"])
    with pytest.raises(SegexpError, match=r"a\.jpg and a\.png .* same name stem"):
        dataset(root)


def test_two_masks_with_one_stem_are_named_unless_mask_ext_chooses(tmp_path):
    root = folder(tmp_path, {"a.png": blob((0, 1)), "a.bmp": blob((0, 1))}, images=["a.png"])
    with pytest.raises(SegexpError, match=r"same name stem.*dataset\.layout\.mask_ext"):
        dataset(root)
    assert dataset(root, mask_ext="png").pairs[0][1].name == "a.png"


def test_a_dangling_link_is_named(tmp_path):
    root = folder(tmp_path, {"a.png": blob((0, 1))})
    (root / "masks" / "b.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(
        SegexpError, match=r"masks/b\.png is a link to .*gone\.png.* does not exist"
    ):
        dataset(root)


def test_a_two_level_binary_png_mask_still_reads(tmp_path):
    mask = read_mask(folder(tmp_path, {"a.png": blob()}) / "masks" / "a.png", "binary")
    assert mask.dtype == np.uint8 and (mask == (blob() > 0)).all()


# --- 6. signals everywhere, within one batch; the interrupted summary keeps the best val

SIGTERM_AT = """
import os, signal, sys
import segexp.training.fit as fit, segexp.data.scan as scan
where, calls = os.environ["SIGTERM_AT"], []
def wrap(module, name, when):
    real = getattr(module, name)
    def call(*args, **kwargs):
        calls.append(name)
        if when(calls):
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)
    setattr(module, name, call)
if where == "validation 2":  # the second validation pass
    wrap(fit, "evaluate", lambda c: c.count("evaluate") == 2)
elif where == "test":
    wrap(fit, "evaluate", lambda c: c.count("evaluate") == 3)
elif where == "preflight":
    wrap(scan, "_one", lambda c: len(c) == 1)
from segexp.train import main
sys.argv = ["segexp", *sys.argv[1:]]
main()
"""


def interrupted_run(tmp_path: Path, where: str, *args: str) -> tuple[Path, str]:
    run = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-c", SIGTERM_AT, *(args or QUICK), f"hydra.run.dir={run}"],
        env={**os.environ, "PYTHONPATH": str(REPO), "SIGTERM_AT": where},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 143, result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    return run, result.stdout


@pytest.mark.parametrize("where", ["validation 2", "test"])
def test_sigterm_in_an_evaluation_pass_stops_it_and_keeps_the_best_val(tmp_path, where):
    run, _ = interrupted_run(tmp_path, where)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["reason"] == "SIGTERM"
    best = load_checkpoint(run / "checkpoints" / "best.pt")["progress"]
    as_json = json.loads(json.dumps(best["best_val"]).replace("NaN", "null"))  # as written
    assert summary["val"] == as_json and summary["best_epoch"] == best["best_epoch"]
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == (
        1 if where == "validation 2" else 2
    )
    assert "test" not in summary


def test_sigterm_during_the_file_check_stops_before_training(tmp_path):
    data = folder(tmp_path / "data" / "train", {"a.png": blob((0, 1)), "b.png": blob((0, 1))})
    for split in ("val", "test"):
        shutil.copytree(data, tmp_path / "data" / split)
    run, out = interrupted_run(
        tmp_path, "preflight", *TINY_RUN, "logger=none", "dataset=folder",
        f"dataset.root={tmp_path / 'data'}", "dataset.batch_size=2", "dataset.num_workers=0",
        "dataset.in_channels=1", "dataset.mean=[0]", "dataset.std=[1]",
        "dataset.image_size=[16,16]",
    )  # fmt: skip
    assert "interrupted by SIGTERM; no epoch finished" in out
    assert not (run / "checkpoints").exists()
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
