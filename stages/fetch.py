"""Stage fetch: the four MNIST files, MD5-verified, into data/raw/ (from $MNIST_LOCAL_DIR if set);
or, where $MNIST_LOCAL_DIR holds the starter files (the four .pth tensor files of the course's
starter code), those, checked."""

from mnist_dvc import download, paths
from mnist_dvc.cli import run_stage


def main() -> None:
    local_dir = download.local_dir_from_env()
    kind = download.fetch(paths.RAW, local_dir=local_dir)
    what = "the starter code's 4 .pth tensor files checked" if kind == "starter" else "4 files verified"
    print(f"fetch: {what} into {paths.RAW} (from {local_dir or 'the public mirrors'})")


if __name__ == "__main__":
    run_stage(main)
