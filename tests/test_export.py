"""segexp.export: the exported model equals the model at any size it allows."""

import numpy as np
import pytest
import torch

from segexp.errors import SegexpError
from segexp.training.experiment import load_run
from tests.conftest import TINY, export_tool, untrained_run

EXPORTED = {
    "unet": [*TINY],  # size multiple 1: skip alignment at odd sizes
    "smp_unet": ["name=test", "model=smp_unet", "model.net.encoder_name=tu-mobilenetv3_small_050",
                 "+model.net.decoder_channels=[8,8,8,8,8]", "dataset.image_size=[64,64]"],
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("model", list(EXPORTED))
def test_export_equals_the_model_at_any_size(tmp_path, fmt, model):
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    folder = untrained_run(tmp_path / "run", EXPORTED[model])
    path = export_tool(f"run={folder}", f"format={fmt}", f"output={tmp_path / 'model'}")
    run = load_run(folder, device="cpu")
    if fmt == "onnx":
        session = ort.InferenceSession(str(path))
        exported = lambda x: session.run(None, {"image": x.numpy()})[0]  # noqa: E731
    else:
        scripted = torch.jit.load(str(path))
        exported = lambda x: scripted(x).detach().numpy()  # noqa: E731
    for height, width in ((45, 61), (97, 131), (360, 480)):
        images = torch.randint(0, 256, (2, 3, height, width), dtype=torch.uint8)
        with torch.no_grad():
            expected = run.model(images).numpy()
        got = exported(images)
        assert got.shape == (2, 5, height, width)
        assert np.abs(got - expected).max() < 1e-4, (height, width)
    with pytest.raises(SegexpError, match="already exists"):
        export_tool(f"run={folder}", f"format={fmt}", f"output={path}")


def test_export_refuses_a_size_below_the_models_multiple(tmp_path):
    folder = untrained_run(tmp_path / "run", EXPORTED["smp_unet"])
    with pytest.raises(SegexpError, match=r"smaller than the model's size multiple \(32\)"):
        export_tool(f"run={folder}", "format=torchscript", "check_sizes=[[20,40]]")
    assert not list((folder / "checkpoints").glob("*.torchscript.pt"))
