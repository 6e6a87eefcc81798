"""Do evaluate, predict and export agree? Four checks that once drifted apart (issue 11).

    python benchmarks/drift_checks.py --runs-dir /tmp/drift --train --out results.json

1. predict vs evaluate on a run whose evaluation transform halves the resolution (ISBI 2012,
   trained on 256 x 256 resizes of the 512 x 512 images): test mIoU of each, scored at 512.
2. A 16-bit PNG and its 8-bit version: what the reader makes of them, and how many mask pixels
   predict changes between the two.
3. evaluate data=<folder> on masks stored as 0/255 (mode index): refused, or scored?
4. export (ONNX, TorchScript) against the PyTorch model at 45x61, 97x131, 360x480 (and a
   multiple of 32): the largest absolute logit difference.
The tools are called through their `key=value` command lines; --train (re)trains the three runs
(ISBI 2012 half resolution, a tiny U-Net, a tiny smp U-Net) into --runs-dir first. Checkpoints
trained by segexp 0.1 load too, so the same three runs measure the code before and after.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

PY = sys.executable
ISBI = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012")
ENV = dict(os.environ, OMP_NUM_THREADS="1")

AUG_HALF = """\
train:
  _target_: albumentations.Compose
  transforms:
    - _target_: albumentations.Resize
      height: 256
      width: 256
    - _target_: albumentations.RandomCrop
      height: ${dataset.image_size[0]}
      width: ${dataset.image_size[1]}
      pad_if_needed: true
      fill_mask: ${dataset.ignore_index}
eval:
  _target_: albumentations.Compose
  transforms:
    - _target_: albumentations.Resize
      height: 256
      width: 256
"""


def sh(args, check=True):
    print("$", " ".join(str(a) for a in args), flush=True)
    p = subprocess.run([str(a) for a in args], env=ENV, capture_output=True, text=True)
    if check and p.returncode != 0:
        print(p.stdout[-3000:], p.stderr[-3000:])
        raise SystemExit(f"command failed ({p.returncode})")
    return p


def train_runs(d: Path):
    conf = d / "conf" / "aug"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "half.yaml").write_text(AUG_HALF)
    cmds = {
        "run1": [
            "--config-dir",
            d / "conf",
            "aug=half",
            "dataset=isbi2012",
            f"dataset.root={ISBI}",
            "model=unet",
            "model.net.base_channels=8",
            "model.net.depth=3",
            "dataset.image_size=[128,128]",
            "trainer.epochs=20",
        ],
        "tiny": [
            "trainer=debug",
            "model.net.depth=2",
            "model.net.base_channels=4",
            "dataset.image_size=[32,32]",
        ],
        "tiny_smp": [
            "trainer=debug",
            "model=smp_unet",
            "model.net.encoder_name=resnet18",
            "dataset.image_size=[64,64]",
        ],
    }
    for name, args in cmds.items():
        shutil.rmtree(d / name, ignore_errors=True)
        sh(
            [
                PY,
                "-m",
                "segexp",
                *args,
                "trainer.device=cpu",
                "logger=none",
                f"hydra.run.dir={d / name}",
            ]
        )


def confusion(pred: np.ndarray, true: np.ndarray, n: int = 2) -> np.ndarray:
    return np.bincount(true.ravel().astype(np.int64) * n + pred.ravel(), minlength=n * n).reshape(
        n, n
    )


def miou(cm: np.ndarray) -> float:
    tp = np.diag(cm).astype(float)
    union = cm.sum(0) + cm.sum(1) - tp
    return float(np.nanmean(np.where(union > 0, tp / np.maximum(union, 1), np.nan)))


def test_pairs(run: Path):
    from segexp.config.build import build
    from segexp.training.experiment import load_run

    r = load_run(run, device="cpu")
    return r, [(Path(i), Path(m)) for i, m in build(r.cfg.dataset.test).pairs]


def part1(d: Path, run: Path, res: dict):
    out = d / "m1"
    shutil.rmtree(out, ignore_errors=True)
    r, pairs = test_pairs(run)
    res["test_stems"] = [p[0].stem for p in pairs]
    img_dir = out / "test_images"
    img_dir.mkdir(parents=True)
    for i, _ in pairs:
        shutil.copy(i, img_dir / i.name)
    # (a) evaluate split=test
    sh([PY, "-m", "segexp.evaluate", f"run={run}", "split=test", f"output={out / 'eval_test'}"])
    m = json.loads((out / "eval_test" / "metrics.json").read_text())
    cm_eval = np.array(m["confusion_matrix"])
    res["1a_evaluate_test_mIoU"] = m["mIoU"]
    res["1a_evaluate_scored_pixels"] = int(cm_eval.sum())
    res["1a_evaluate_scored_resolution"] = (
        "256x256"
        if cm_eval.sum() == len(pairs) * 256 * 256
        else "512x512"
        if cm_eval.sum() == len(pairs) * 512 * 512
        else "other"
    )
    # (b) predict at full resolution, scored at 512 against true masks (>0 -> 1)
    sh([PY, "-m", "segexp.predict", f"run={run}", f"input={img_dir}", f"output={out / 'pred'}"])
    cm = np.zeros((2, 2), np.int64)
    for i, mpath in pairs:
        true = (np.asarray(Image.open(mpath)) > 0).astype(np.int64)
        pred = np.asarray(Image.open(out / "pred" / "masks" / f"{i.stem}.png")).astype(np.int64)
        assert pred.shape == true.shape, (pred.shape, true.shape)
        cm += confusion(pred, true)
    res["1b_predict_fullres_mIoU_at_512"] = miou(cm)
    res["1b_predict_confusion"] = cm.tolist()
    # reference (not a tool): model on the 256x256 eval-resized image, argmax upsampled (nearest)
    # to 512, scored at 512 -- roughly what predict should get if it honoured aug.eval.
    import torch.nn.functional as F

    from segexp.config.build import build
    from segexp.data.decode import read_image

    tf = build(r.cfg.aug.eval)
    cm_ref = np.zeros((2, 2), np.int64)
    with torch.inference_mode():
        for i, mpath in pairs:
            img = read_image(i, 1)
            small = tf(image=img[:, :, None])["image"]
            x = torch.from_numpy(small.transpose(2, 0, 1).copy())[None]
            logits = r.model(x)  # uint8: the model normalises
            up = F.interpolate(logits, size=img.shape, mode="bilinear", align_corners=False)
            true = (np.asarray(Image.open(mpath)) > 0).astype(np.int64)
            cm_ref += confusion(up.argmax(1)[0].numpy(), true)
    res["1ref_model_at_256_upsampled_mIoU_at_512"] = miou(cm_ref)


def part2(d: Path, run: Path, res: dict):
    from segexp.data.decode import read_image  # the one reader: training and predict

    out = d / "m2"
    shutil.rmtree(out, ignore_errors=True)
    u8, u16 = out / "u8", out / "u16"
    u8.mkdir(parents=True)
    u16.mkdir()
    stems = ["00", "01", "02"]
    n255_pred = n255_train = n255_orig = total = 0
    maxdiff_train = 0
    for s in stems:
        src = Path(ISBI) / "images" / f"{s}.png"
        arr = np.asarray(Image.open(src).convert("L"))
        Image.fromarray(arr).save(u8 / f"{s}.png")
        im16 = Image.fromarray(arr.astype(np.uint16) * 257)
        im16.save(u16 / f"{s}.png")
        res.setdefault("2_uint16_pil_mode", Image.open(u16 / f"{s}.png").mode)
        a_pred = read_image(u16 / f"{s}.png", 1)
        a_train = read_image(u16 / f"{s}.png", 1)
        n255_pred += int((a_pred == 255).sum())
        n255_train += int((a_train == 255).sum())
        n255_orig += int((arr == 255).sum())
        maxdiff_train = max(maxdiff_train, int(np.abs(a_train.astype(int) - arr).max()))
        total += arr.size
    res["2_frac255_predict_reader"] = n255_pred / total
    res["2_frac255_training_reader_read_image"] = n255_train / total
    res["2_frac255_original_8bit"] = n255_orig / total
    res["2_training_reader_maxabs_vs_8bit"] = maxdiff_train
    for name, folder in (("p8", u8), ("p16", u16)):
        sh([PY, "-m", "segexp.predict", f"run={run}", f"input={folder}", f"output={out / name}"])
    diff = tot = 0
    for s in stems:
        a = np.asarray(Image.open(out / "p8" / "masks" / f"{s}.png"))
        b = np.asarray(Image.open(out / "p16" / "masks" / f"{s}.png"))
        diff += int((a != b).sum())
        tot += a.size
    res["2_frac_mask_pixels_differ_8bit_vs_16bit"] = diff / tot


def part3(d: Path, run: Path, res: dict):
    out = d / "m3"
    shutil.rmtree(out, ignore_errors=True)
    _, pairs = test_pairs(run)
    (out / "data" / "images").mkdir(parents=True)
    (out / "data" / "masks").mkdir()
    for i, m in pairs:
        shutil.copy(i, out / "data" / "images" / i.name)
        shutil.copy(m, out / "data" / "masks" / m.name)
    vals = np.unique(np.concatenate([np.unique(np.asarray(Image.open(m))) for _, m in pairs]))
    res["3_mask_values"] = vals.tolist()
    for tag, extra in (("plain", []), ("binary_masks", ["dataset.mask_mode=binary"])):
        p = sh(
            [
                PY,
                "-m",
                "segexp.evaluate",
                f"run={run}",
                f"data={out / 'data'}",
                f"output={out / tag}",
                *extra,
            ],
            check=False,
        )
        entry = {
            "exit_code": p.returncode,
            "log_tail": (p.stdout + p.stderr).strip().splitlines()[-12:],
        }
        mfile = out / tag / "metrics.json"
        if mfile.exists():
            m = json.loads(mfile.read_text())
            cm = np.array(m["confusion_matrix"])
            entry.update(
                mIoU=m["mIoU"],
                per_class_iou=m["per_class_iou"],
                pixel_acc=m["pixel_acc"],
                scored_pixels=int(cm.sum()),
                confusion=cm.tolist(),
            )
        res[f"3_evaluate_data_{tag}"] = entry


def part4(d: Path, runs: dict, res: dict):
    import onnxruntime as ort

    from segexp.training.experiment import load_run

    out = d / "m4"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    sizes = [(45, 61), (97, 131), (360, 480), (128, 160)]  # last: multiple-of-32 control
    for name, run in runs.items():
        r = load_run(run, device="cpu")
        r.model.float()
        c = int(r.cfg.dataset.in_channels)
        files = {}
        for fmt, suf in (("onnx", ".onnx"), ("torchscript", ".torchscript.pt")):
            f = out / f"{name}{suf}"
            p = sh(
                [PY, "-m", "segexp.export", f"run={run}", f"format={fmt}", f"output={f}"],
                check=False,
            )
            files[fmt] = f if p.returncode == 0 else None
            if p.returncode:
                res[f"4_{name}_{fmt}_export_error"] = (
                    (p.stdout + p.stderr).strip().splitlines()[-3:]
                )
        sess = (
            ort.InferenceSession(str(files["onnx"]), providers=["CPUExecutionProvider"])
            if files["onnx"]
            else None
        )
        ts = (
            torch.jit.load(str(files["torchscript"]), map_location="cpu")
            if files["torchscript"]
            else None
        )
        g = torch.Generator().manual_seed(0)
        for h, w in sizes:
            x = torch.randint(0, 256, (1, c, h, w), dtype=torch.uint8, generator=g)
            key = f"4_{name}_{h}x{w}"
            with torch.inference_mode():
                try:
                    ref = r.model(x).float()  # uint8: the model normalises
                except Exception as e:
                    res[key] = {"model_error": repr(e)[:200]}
                    continue
                entry = {}
                for fmt, fn in (
                    (
                        "onnx",
                        lambda x=x, sess=sess: torch.from_numpy(
                            sess.run(None, {"image": x.numpy()})[0]
                        ),
                    ),
                    ("torchscript", lambda x=x, ts=ts: ts(x).float()),
                ):
                    if (sess if fmt == "onnx" else ts) is None:
                        entry[fmt] = "no export"
                        continue
                    try:
                        y = fn()
                        if y.shape == ref.shape:
                            entry[fmt] = float((y - ref).abs().max())
                            entry[fmt + "_argmax_differs"] = float(
                                (y.argmax(1) != ref.argmax(1)).float().mean()
                            )
                        else:
                            entry[fmt] = f"shape {tuple(y.shape)} vs {tuple(ref.shape)}"
                    except Exception as e:
                        entry[fmt] = "error: " + repr(e)[:200]
                entry["ref_logit_absmax"] = float(ref.abs().max())
                res[key] = entry


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs-dir", default="/tmp/drift")
    ap.add_argument("--work", default=None, help="scratch outputs (default: runs-dir)")
    ap.add_argument("--train", action="store_true", help="(re)train run1, tiny, tiny_smp first")
    ap.add_argument("--parts", default="1234")
    ap.add_argument("--out", default="results.json")
    a = ap.parse_args()
    d = Path(a.runs_dir)
    work = Path(a.work) if a.work else d
    torch.set_num_threads(1)
    import segexp

    res = {"segexp": segexp.__file__, "load_average": os.getloadavg()}
    if a.train:
        train_runs(d)
    run1 = d / "run1"
    if "1" in a.parts:
        part1(work, run1, res)
    if "2" in a.parts:
        part2(work, run1, res)
    if "3" in a.parts:
        part3(work, run1, res)
    if "4" in a.parts:
        part4(work, {"run1": run1, "tiny": d / "tiny", "tiny_smp": d / "tiny_smp"}, res)
    res["load_average_end"] = os.getloadavg()
    text = json.dumps(res, indent=1)
    print(text)
    Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
