"""Effective receptive field (ERF) of a backbone stage, as in RepLKNet (Ding et al., CVPR 2022, Sec. 4.2).

The contribution of every input pixel is the absolute gradient of the centre pixel of a stage's output (summed
over channels) with respect to the image, summed over the input channels and averaged over images. It is shown
log-scaled in [0, 1] as RepLKNet's ``visualize_erf.py`` does, but relative to the maximum so that the picture does
not depend on the gradients' scale (three decades below the maximum map to 0): a wider bright area, a larger ERF.
"""
import glob
import os.path as osp
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')


def load_images(folder: Optional[str], num: int, size: int = 224, seed: int = 0) -> torch.Tensor:
    """``(num, 3, size, size)`` normalised images: the first ``num`` images of ``folder`` (searched
    recursively, resized), or, without a folder, smooth random images (fixed ``seed``)."""
    if folder:
        from PIL import Image
        paths = sorted(p for p in glob.glob(osp.join(folder, '**', '*'), recursive=True)
                       if p.lower().endswith(IMAGE_EXTENSIONS))
        if not paths:
            raise FileNotFoundError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) under {folder!r}')
        arrays = [np.asarray(Image.open(p).convert('RGB').resize((size, size), Image.BILINEAR), dtype=np.float32)
                  for p in paths[:num]]
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 255.0
    else:
        generator = torch.Generator().manual_seed(seed)
        coarse = torch.rand(num, 3, size // 16, size // 16, generator=generator)
        images = F.interpolate(coarse, size=(size, size), mode='bicubic', align_corners=False)
        images = (images + 0.05 * torch.randn(images.shape, generator=generator)).clamp(0, 1)
    return (images - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def effective_receptive_field(model: nn.Module, images: torch.Tensor, stage: int) -> np.ndarray:
    """Mean over ``images`` of ``sum_c |d relu(out[stage][:, :, h/2, w/2]).sum() / d image|``: ``(H, W)``, with
    ``stage`` indexing the model's outputs (``out_indices`` order), in eval mode."""
    model.eval()
    total = None
    for image in images:
        x = image[None].clone().requires_grad_(True)
        outs = model(x)
        if not -len(outs) <= stage < len(outs):
            raise ValueError(f'stage {stage} out of range for {len(outs)} outputs')
        feat = outs[stage]
        h, w = feat.shape[-2:]
        centre = F.relu(feat[:, :, h // 2, w // 2]).sum()  # RepLKNet: ReLU (a normalised map sums to 0)
        (grad, ) = torch.autograd.grad(centre, x)
        score = grad.abs().sum(dim=(0, 1)).detach()  # (H, W), summed over input channels
        total = score if total is None else total + score
    return (total / len(images)).numpy()


DISPLAY_DECADES = 3


def erf_display(score: np.ndarray) -> np.ndarray:
    """``log10(1 + 10^3 * score / max(score)) / log10(1 + 10^3)``: 1 at the maximum, 0 where nothing
    contributes (RepLKNet's ``log10(score + 1)`` after scaling the maximum to 10^3)."""
    scale = 10.0 ** DISPLAY_DECADES
    relative = score / max(float(score.max()), np.finfo(np.float64).tiny)
    return np.log10(1 + scale * relative) / np.log10(1 + scale)

