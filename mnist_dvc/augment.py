"""Data augmentation on the whole batch at once: no per-image Python."""

import math

import torch
import torch.nn.functional as F


def random_affine(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random affine per image (rotation ±10°, scale 0.9-1.1, shift ±2 px), seeded by `generator`."""
    n = x.shape[0]
    u = torch.rand(n, 4, generator=generator).to(x.device) * 2 - 1
    angle = u[:, 0] * math.radians(10)
    scale = 1 + u[:, 1] * 0.1
    shift = u[:, 2:] * (2 / 14)  # affine_grid works in [-1, 1]: 14 px per unit
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
