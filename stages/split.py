"""Stage split: read data/raw/ (the IDX files or the starter files), split train/valid (seeded),
store uint8 tensors in data/prepared/."""

from mnist_dvc import data, paths
from mnist_dvc.cli import run_stage
from mnist_dvc.params import load_params


def main() -> None:
    params = load_params()
    counts = data.prepare(paths.RAW, paths.PREPARED, params.data.valid_fraction,
                          params.data.stratify, params.seed, params.data.train_limit,
                          params.data.test_limit)
    source = ("the starter code's .pth files" if data.source_kind(paths.RAW) == "starter"
              else "the IDX files")
    print("split: " + ", ".join(f"{name} {n}" for name, n in counts.items()) + f" (from {source})")


if __name__ == "__main__":
    run_stage(main)
