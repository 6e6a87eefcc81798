"""Post-processing of predicted class maps (config group ``postprocess``: none | small_components
| crf), applied by segexp.evaluate, segexp.predict and, when configured, the final test pass.

Each post-processor is called with one image's class map (H, W), its class probabilities
(classes, H, W) and the image (channels, H, W, uint8), all at the labels' resolution, and returns
the new class map. They run on the host (numpy): connected components and the dense CRF have
no GPU implementation in torch.
"""

import numpy as np
import torch
from scipy import ndimage

from segexp.errors import SegexpError


class SmallComponents:
    """Removes connected components of fewer than ``min_size`` pixels (per class, 8-connected)
    and fills each removed pixel with the class of the nearest kept pixel, i.e. the surrounding
    class (a small island inside a region becomes that region's class, not background).
    When every component of an image is small, the map is left unchanged."""

    name = "small_components"

    def __init__(self, min_size: int = 64, connectivity: int = 8) -> None:
        if int(min_size) < 1:
            raise SegexpError(f"postprocess.min_size={min_size}: give a pixel count >= 1")
        if connectivity not in (4, 8):
            raise SegexpError(f"postprocess.connectivity={connectivity}: use 4 or 8")
        self.min_size = int(min_size)
        self.structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)

    def __call__(
        self, prediction: torch.Tensor, probs: torch.Tensor | None = None, image=None
    ) -> torch.Tensor:
        classes = prediction.cpu().numpy()
        removed = np.zeros(classes.shape, dtype=bool)
        for c in np.unique(classes):
            labels, count = ndimage.label(classes == c, structure=self.structure)
            if count == 0:
                continue
            sizes = np.bincount(labels.ravel(), minlength=count + 1)
            small = sizes < self.min_size
            small[0] = False  # label 0: not this class
            removed |= small[labels]
        if not removed.any() or removed.all():
            return prediction
        # For every removed pixel, the index of the nearest kept pixel (Euclidean).
        _, (rows, cols) = ndimage.distance_transform_edt(removed, return_indices=True)
        filled = classes[rows, cols]
        return torch.from_numpy(filled).to(prediction.device, prediction.dtype)


class DenseCRF:
    """Fully connected CRF (Krähenbühl & Koltun 2011) on the probabilities, with a Gaussian
    smoothness kernel and a bilateral (position + colour) appearance kernel. Needs the optional
    extra ``crf`` (pip install 'segexp[crf]', which installs pydensecrf2)."""

    name = "crf"

    def __init__(
        self,
        iterations: int = 5,
        gaussian_sxy: float = 3.0,
        gaussian_weight: float = 3.0,
        bilateral_sxy: float = 50.0,
        bilateral_srgb: float = 13.0,
        bilateral_weight: float = 5.0,
    ) -> None:
        try:
            import pydensecrf.densecrf as densecrf
        except ImportError as err:
            raise SegexpError(
                "postprocess=crf needs pydensecrf2: pip install 'segexp[crf]' (or choose "
                "postprocess=none or postprocess=small_components)"
            ) from err
        self._densecrf = densecrf
        self.iterations = int(iterations)
        self.gaussian = (float(gaussian_sxy), float(gaussian_weight))
        self.bilateral = (float(bilateral_sxy), float(bilateral_srgb), float(bilateral_weight))

    def __call__(
        self, prediction: torch.Tensor, probs: torch.Tensor, image: torch.Tensor
    ) -> torch.Tensor:
        from pydensecrf.utils import unary_from_softmax

        p = probs.float().cpu().numpy().astype(np.float32)
        num_classes, height, width = p.shape
        crf = self._densecrf.DenseCRF2D(width, height, num_classes)
        crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(np.clip(p, 1e-8, 1.0))))
        crf.addPairwiseGaussian(sxy=self.gaussian[0], compat=self.gaussian[1])
        rgb = image.cpu().numpy().transpose(1, 2, 0)
        rgb = np.repeat(rgb[..., :1], 3, axis=2) if rgb.shape[2] == 1 else rgb[..., :3]
        crf.addPairwiseBilateral(
            sxy=self.bilateral[0],
            srgb=self.bilateral[1],
            rgbim=np.ascontiguousarray(rgb, dtype=np.uint8),
            compat=self.bilateral[2],
        )
        q = np.array(crf.inference(self.iterations)).reshape(num_classes, height, width)
        return torch.from_numpy(q.argmax(axis=0)).to(prediction.device, prediction.dtype)


def build_postprocess(node) -> SmallComponents | DenseCRF | None:
    """The ``postprocess`` config node's post-processor; None for ``postprocess=none``."""
    from segexp.config.build import build

    if node is None or "_target_" not in node:
        return None
    return build(node)
