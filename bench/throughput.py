"""Training throughput: our tensor-resident loop vs the starter code's data path (per-sample
Dataset + DataLoader, batch 16), same MyConvNet, measured in the same run, interleaved (ours,
starter code's, ours, starter code's, ...) so that drift in the machine's speed hits both.
Ours is also given as a share of what this machine's cores multiply (a 2048x2048 torch.matmul in
the training precision), so the number means something on any CPU.

    python -m bench.throughput [--images 4096] [--repeats 3] [--json bench/results/throughput.json]
"""

import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from bench import common
from mnist_dvc.device import setup
from mnist_dvc.digits import Digits
from mnist_dvc.model import MyConvNet
from mnist_dvc.training import Run, build, train_epoch


class PerSampleDataset(Dataset):
    """The starter code's data path: one image at a time through __getitem__."""

    def __init__(self, digits: Digits):
        self.digits = digits

    def __len__(self):
        return len(self.digits)

    def __getitem__(self, i):
        return self.digits.images[i].float().div(255).unsqueeze(0), self.digits.labels[i]


def reference_images_per_second(digits: Digits, device) -> float:
    torch.manual_seed(0)
    model = MyConvNet().to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4, weight_decay=1e-5)
    loader = DataLoader(PerSampleDataset(digits), batch_size=16, shuffle=True)
    started = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10)
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(digits) / (time.perf_counter() - started)


def ours_images_per_second(digits: Digits, params, device, precision) -> float:
    run = Run(device, precision, progress=False)
    trainer = build(params, len(digits), run)  # as fit builds it: channels_last, seeded
    on_device = Digits(digits.images.to(device), digits.labels.to(device))
    warm_up = on_device.take(torch.arange(4 * params.train.batch_size, device=device))
    train_epoch(trainer, warm_up, params, run)
    started = time.perf_counter()
    train_epoch(trainer, on_device, params, run)
    return len(digits) / (time.perf_counter() - started)


def training_flops_per_image(model: torch.nn.Module) -> int:
    """Multiply-adds of the convolutions and linear layers for one image, x2 for FLOPs, x3 for a
    training step (the forward pass, and the backward pass's two products per layer)."""
    macs = []

    def count(layer, inputs, output):
        if isinstance(layer, torch.nn.Conv2d):
            per_output = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
            macs.append(output.numel() * per_output)
        else:
            macs.append(layer.in_features * layer.out_features)

    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    hooks = [layer.register_forward_hook(count) for layer in layers]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 1, 28, 28))
    for hook in hooks:
        hook.remove()
    return 3 * 2 * sum(macs)


def matmul_flops_per_second(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """The median rate of a size x size matrix product on the CPU in `dtype`, all threads."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    a @ b  # oneDNN/MKL pick and prepare their kernel on the first call
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * size**3 / common.median(times)


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4096, help="images per timed run")
    parser.add_argument("-S", dest="overrides", action="append", default=[],
                        help="params override key=value, as dvc exp run -S (e.g. train.precision=fp32)")
    args = parser.parse_args()
    params = common.project_params(common.parse_overrides(args.overrides))
    device, precision = setup(params.train.precision)
    train, _, _ = common.load_splits(params)
    digits = train.take(torch.arange(args.images))
    ours, reference = [], []
    for _ in range(args.repeats):
        ours.append(ours_images_per_second(digits, params, device, precision))
        reference.append(reference_images_per_second(digits, device))
    ratio = common.median(ours) / common.median(reference)
    dtype = torch.bfloat16 if precision.bf16 else torch.float32
    matmul = matmul_flops_per_second(dtype) if device.type == "cpu" else None
    flops = training_flops_per_image(MyConvNet())
    share = common.median(ours) * flops / matmul if matmul else None
    t = params.train
    common.report("Training throughput (images/s, median)", [
        (f"ours: batch {t.batch_size}, {precision.dtype}, channels_last, augment={t.augment}",
         f"{common.median(ours):8.0f}   runs {[round(v) for v in ours]}"),
        ("reference: per-sample DataLoader, batch 16, fp32",
         f"{common.median(reference):8.0f}   runs {[round(v) for v in reference]}"),
        ("ratio", f"{ratio:8.2f}x"),
        (f"ours as a share of a {precision.dtype} 2048x2048 matmul's rate", "not measured on a GPU"
         if share is None else f"{share:8.0%}   ({flops / 1e6:.0f} MFLOP an image, "
         f"matmul {matmul / 1e9:.0f} GFLOP/s)"),
    ], {"ours_images_per_second": ours, "reference_images_per_second": reference,
        "ratio_of_medians": ratio, "training_flops_per_image": flops,
        "matmul_flops_per_second": matmul, "share_of_matmul_rate": share,
        "batch_size": t.batch_size, "precision": precision.dtype, "augment": t.augment,
        "images_per_run": args.images, "device": str(device)},
        args.json, params)


if __name__ == "__main__":
    main()
