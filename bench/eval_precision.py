"""What evaluating in fp32 costs against bf16: one per-epoch evaluation (valid + test, 20,000 images
by default), the two precisions interleaved, median of --repeats. Wall time and process CPU time:
on a shared machine wall time stretches with the load, CPU time much less (divided by the threads
it approximates a quiet machine's wall time). Random weights and images: speed does not depend on
them.

    python -m bench.eval_precision [--images 20000] [--repeats 3] [--json ...]

Why it exists: every evaluation runs in fp32 (mnist_dvc/inference.py); on a CPU with native bf16
training runs in bf16, and this is the price of not evaluating in bf16 too.
"""

import time

import torch

from bench import common
from mnist_dvc.device import Precision, autocast, setup
from mnist_dvc.inference import eval_batch_size
from mnist_dvc.model import MyConvNet, as_input

CPU = torch.device("cpu")
PRECISIONS = tuple(setup(choice, CPU, warn=False).precision for choice in ("bf16", "fp32"))


@torch.inference_mode()
def forward_all(model, images: torch.Tensor, precision: Precision) -> None:
    batch = eval_batch_size(CPU)
    for start in range(0, len(images), batch):
        with autocast(CPU, precision):
            model(as_input(images[start:start + batch])).float()


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = MyConvNet().eval().to(memory_format=torch.channels_last)  # as fit holds it
    images = torch.randint(0, 256, (args.images, 28, 28), dtype=torch.uint8)
    for precision in PRECISIONS:  # warm-up: oneDNN builds its kernels on first use
        forward_all(model, images[:512], precision)
    wall = {p.dtype: [] for p in PRECISIONS}
    cpu = {p.dtype: [] for p in PRECISIONS}
    for r in range(args.repeats):
        for precision in PRECISIONS if r % 2 == 0 else PRECISIONS[::-1]:
            started, cpu_started = time.perf_counter(), time.process_time()
            forward_all(model, images, precision)
            wall[precision.dtype].append(time.perf_counter() - started)
            cpu[precision.dtype].append(time.process_time() - cpu_started)
    median = {k: {"wall": common.median(wall[k]), "cpu": common.median(cpu[k])} for k in wall}
    threads = torch.get_num_threads()
    extra_wall = median["fp32"]["wall"] - median["bf16"]["wall"]
    extra_cpu = (median["fp32"]["cpu"] - median["bf16"]["cpu"]) / threads
    common.report(f"One evaluation of {args.images} images: fp32 against bf16", [
        ("bf16 median s (wall / cpu)", f"{median['bf16']['wall']:.2f} / {median['bf16']['cpu']:.2f}"),
        ("fp32 median s (wall / cpu)", f"{median['fp32']['wall']:.2f} / {median['fp32']['cpu']:.2f}"),
        ("fp32 extra s (wall; cpu / threads)", f"{extra_wall:.2f}; {extra_cpu:.2f}"),
    ], {"images": args.images, "wall_seconds": wall, "cpu_seconds": cpu, "median": median,
        "fp32_extra_wall_seconds": extra_wall, "fp32_extra_cpu_seconds_per_thread": extra_cpu},
        args.json)


if __name__ == "__main__":
    main()
