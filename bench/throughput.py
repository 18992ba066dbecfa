"""Training throughput: our tensor-resident loop vs the starter code's data path (per-sample
Dataset + DataLoader, batch 16), same MyConvNet, measured in the same run, interleaved (ours,
starter code's, ours, starter code's, ...) so that drift in the machine's speed hits both.

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
    t = params.train
    common.report("Training throughput (images/s, median)", [
        (f"ours: batch {t.batch_size}, {precision.dtype}, channels_last, augment={t.augment}",
         f"{common.median(ours):8.0f}   runs {[round(v) for v in ours]}"),
        ("reference: per-sample DataLoader, batch 16, fp32",
         f"{common.median(reference):8.0f}   runs {[round(v) for v in reference]}"),
        ("ratio", f"{ratio:8.2f}x"),
    ], {"ours_images_per_second": ours, "reference_images_per_second": reference,
        "ratio_of_medians": ratio, "batch_size": t.batch_size, "precision": precision.dtype,
        "augment": t.augment, "images_per_run": args.images, "device": str(device)},
        args.json, params)


if __name__ == "__main__":
    main()
