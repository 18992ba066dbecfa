"""What MNIST is, for every module that reads it: the image size, the classes, the four IDX files
(with their well-known MD5s) and the starter files (the four .pth tensor files of the course's
starter code), and which of the two a folder holds."""

from pathlib import Path

from mnist_dvc.errors import MnistError

IMAGE_SIZE = 28
NUM_CLASSES = 10
# The canonical files and their MD5s (the values torchvision checks); the test set's prefix is "t10k".
IDX_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
IDX_PREFIXES = {"train": "train", "test": "t10k"}
IDX_NAMES = tuple(IDX_FILES)
# Per prefix, its (images, labels) file: the names above, images first.
IDX_SETS = {prefix: tuple(name for name in IDX_NAMES if name.startswith(f"{prefix}-"))
            for prefix in IDX_PREFIXES.values()}
# The starter files: the dataset of the course's starter code, four tensors written with
# torch.save, (images, labels) per set.
STARTER_FILES = {"train": ("train_data.pth", "train_labels.pth"),
                 "test": ("test_data.pth", "test_labels.pth")}
STARTER_NAMES = tuple(name for pair in STARTER_FILES.values() for name in pair)


def source_kind(folder: str | Path) -> str:
    """Which source a folder holds: "starter" if any of the starter files is there, else "idx".

    Both kinds at once is refused: which one a run used would be a guess.
    """
    folder = Path(folder)
    idx = [name for name in IDX_NAMES if (folder / name).exists()]
    starter = [name for name in STARTER_NAMES if (folder / name).exists()]
    if idx and starter:
        raise MnistError(f"{folder} holds both MNIST .gz files ({idx[0]}) and the starter code's "
                         f".pth files ({starter[0]}): keep only one of the two sets in that folder")
    return "starter" if starter else "idx"
