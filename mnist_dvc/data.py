"""MNIST as tensors: read the source files (the IDX .gz files, or the four .pth tensor files of
the course's starter code), split train/valid (random, seeded), store and load the splits."""

import gzip
import struct
import zlib
from pathlib import Path

import torch

from mnist_dvc.atomic import atomic_dir
from mnist_dvc.digits import Digits, save_digits
from mnist_dvc.errors import MnistError
from mnist_dvc.mnist import IDX_PREFIXES, IDX_SETS, IMAGE_SIZE, NUM_CLASSES, source_kind
from mnist_dvc.starter_files import read_starter_set

# Largest file we accept after decompression: the 60k training images are 47,040,016 bytes.
MAX_IDX_BYTES = 64 * 2**20


def parse_idx(raw: bytes, name: str = "IDX data") -> torch.Tensor:
    """Parse an uncompressed IDX file of unsigned bytes, checking the header against the size."""
    if len(raw) < 4:
        raise MnistError(f"{name} is truncated ({len(raw)} bytes, no IDX header): fetch it again")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or not 1 <= ndim <= 4:
        raise MnistError(f"{name} has IDX magic {raw[:4].hex()}, expected 000008 followed by 1-4 "
                         "dimensions: it is not an MNIST IDX file; fetch it again")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise MnistError(f"{name} is truncated inside its IDX header: fetch it again")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    count = 1
    for d in dims:
        count *= d
    if count != len(raw) - header:
        raise MnistError(f"{name} header claims dimensions {list(dims)} ({count} bytes) but holds "
                         f"{len(raw) - header} bytes of data: the file is truncated or corrupt; "
                         "fetch it again")
    if count == 0:  # torch.frombuffer refuses an empty buffer, and MNIST is never empty
        raise MnistError(f"{name} header claims dimensions {list(dims)}: it holds no data, so it "
                         "is not an MNIST file; fetch it again")
    # The size check above happens before any allocation that depends on the header.
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(dims)


def _read_capped(stream, cap: int, chunk: int = 2**20) -> bytes:
    """Up to `cap` bytes, read in chunks so memory follows the data, not the cap."""
    parts, size = [], 0
    while size < cap and (part := stream.read(min(chunk, cap - size))):
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def read_idx_gz(path: str | Path) -> torch.Tensor:
    path = Path(path)
    if not path.is_file():
        raise MnistError(f"{path} is missing: run the fetch stage (dvc repro fetch)")
    try:
        with gzip.open(path, "rb") as f:
            raw = _read_capped(f, MAX_IDX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise MnistError(f"{path} is not a readable gzip file ({exc}): delete it and fetch again") from None
    if len(raw) > MAX_IDX_BYTES:
        raise MnistError(f"{path} decompresses to more than {MAX_IDX_BYTES} bytes, far more than "
                         "MNIST: it is not an MNIST file; fetch it again")
    return parse_idx(raw, str(path))


def read_split(raw_dir: str | Path, prefix: str) -> Digits:
    """Read one of the two MNIST sets: prefix 'train' or 't10k'."""
    raw_dir = Path(raw_dir)
    images_file, labels_file = IDX_SETS[prefix]
    images = read_idx_gz(raw_dir / images_file)
    labels = read_idx_gz(raw_dir / labels_file)
    if images.ndim != 3 or tuple(images.shape[1:]) != (IMAGE_SIZE, IMAGE_SIZE):
        raise MnistError(f"{prefix} images have shape {list(images.shape)}, expected "
                         f"[N, {IMAGE_SIZE}, {IMAGE_SIZE}]: the images and labels files are swapped "
                         "or not MNIST; fetch again")
    if labels.ndim != 1:
        raise MnistError(f"{prefix} labels have shape {list(labels.shape)}, expected [N]: "
                         "the labels file is not MNIST; fetch again")
    if len(images) != len(labels):
        raise MnistError(f"{prefix} has {len(images)} images but {len(labels)} labels: the two "
                         "files do not belong together; fetch them again")
    if len(labels) and int(labels.max()) >= NUM_CLASSES:
        raise MnistError(f"{prefix} labels hold the value {int(labels.max())}, outside 0-9: the "
                         "labels file is corrupt; fetch it again")
    return Digits(images.contiguous(), labels.long())


def read_sets(raw_dir: str | Path) -> tuple[Digits, Digits]:
    """The training and test sets from whichever source `raw_dir` holds: the four MNIST IDX .gz
    files or the starter code's four .pth tensor files. Both give the same uint8 images, int64
    labels."""
    if source_kind(raw_dir) == "starter":
        return Digits(*read_starter_set(raw_dir, "train")), Digits(*read_starter_set(raw_dir, "test"))
    return read_split(raw_dir, IDX_PREFIXES["train"]), read_split(raw_dir, IDX_PREFIXES["test"])


# --- split ---------------------------------------------------------------------------------------

def split_indices(labels: torch.Tensor, valid_fraction: float, stratify: bool, seed: int):
    """Seeded disjoint (train, valid) index tensors, sorted; stratified keeps class proportions."""
    generator = torch.Generator().manual_seed(seed)
    if stratify:
        groups = [torch.nonzero(labels == c).flatten() for c in range(NUM_CLASSES)]
    else:
        groups = [torch.arange(len(labels))]
    train, valid = [], []
    for group in groups:
        shuffled = group[torch.randperm(len(group), generator=generator)]
        n_valid = round(len(group) * valid_fraction)
        valid.append(shuffled[:n_valid])
        train.append(shuffled[n_valid:])
    train, valid = torch.cat(train).sort().values, torch.cat(valid).sort().values
    if len(train) == 0 or len(valid) == 0:
        raise MnistError(f"data.valid_fraction={valid_fraction} leaves {len(train)} train and "
                         f"{len(valid)} valid images: choose a fraction that leaves both non-empty")
    return train, valid


def split_digits(raw_dir: str | Path, valid_fraction: float, stratify: bool, seed: int,
                 train_limit: int = 0, test_limit: int = 0) -> dict[str, Digits]:
    """The train, valid and test sets read from the raw files (first N images if a limit is set)."""
    full_train, test = read_sets(raw_dir)
    if train_limit:
        full_train = full_train.take(torch.arange(min(train_limit, len(full_train))))
    if test_limit:
        test = test.take(torch.arange(min(test_limit, len(test))))
    train_idx, valid_idx = split_indices(full_train.labels, valid_fraction, stratify, seed)
    return {"train": full_train.take(train_idx), "valid": full_train.take(valid_idx), "test": test}


def prepare(raw_dir: str | Path, out_dir: str | Path, valid_fraction: float, stratify: bool,
            seed: int, train_limit: int = 0, test_limit: int = 0) -> dict:
    """Write train.pt, valid.pt and test.pt to `out_dir` (whole or not at all); return the counts."""
    parts = split_digits(raw_dir, valid_fraction, stratify, seed, train_limit, test_limit)
    with atomic_dir(out_dir) as tmp:
        for name, digits in parts.items():
            save_digits(digits, tmp / f"{name}.pt")
    return {name: len(digits) for name, digits in parts.items()}
