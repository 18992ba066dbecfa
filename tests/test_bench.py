"""The benchmarks' own arithmetic (bench/): what their figures are divided by and counted from."""

import torch

from bench.denormals import denormal_counts
from bench.throughput import training_flops_per_image
from mnist_dvc.model import MyConvNet


def test_training_flops_of_myconvnet_by_hand():
    """Multiply-adds of one image: conv1 64x28x28 outputs x 9 = 451,584; conv2 128x14x14 x 576 =
    14,450,688; the linear layers 6272x784 + 784x98 + 98x10 = 4,995,060; 19,897,332 in all, x2
    FLOPs, x3 a training step. Bugs caught: the forward pass only (39.8 M), a convolution's kernel
    size left out, a layer missed."""
    assert training_flops_per_image(MyConvNet()) == 6 * 19_897_332


def test_counts_denormals_but_not_zeros_or_the_smallest_normal():
    """Bugs caught: zeros counted as denormal; the smallest normal float counted (<= tiny);
    negative denormals missed (no abs); the optimizer's moments not looked at."""
    tiny = torch.finfo(torch.float32).tiny
    weights = torch.tensor([0.0, tiny, -tiny, tiny / 2, -tiny / 4, 1.0])
    blob = {"model": {"w": weights, "steps": torch.tensor(3)},
            "optimizer": {"state": {0: {"exp_avg": torch.tensor([tiny / 8, 0.5]),
                                        "step": torch.tensor(7.0)}}}}
    assert denormal_counts(blob) == {"model": {"values": 6, "denormal": 2},
                                     "optimizer": {"values": 3, "denormal": 1}}
