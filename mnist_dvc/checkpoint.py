"""Resumable training: save the state after every epoch, load it back only if it belongs to this run."""

import hashlib
import json
from pathlib import Path

import torch

from mnist_dvc import torch_files
from mnist_dvc.atomic import torch_save
from mnist_dvc.errors import MnistError
from mnist_dvc.params import Params, as_dict

VERSION = 2
FROM_EPOCH_1 = "training from epoch 1"  # the fix for a checkpoint that cannot be resumed


def run_fingerprint(params: Params, data_files, device: torch.device) -> str:
    """Identifies what a checkpoint was made from: all params, the data's bytes and the device type."""
    digest = hashlib.sha256(json.dumps(as_dict(params), sort_keys=True).encode())
    digest.update(device.type.encode())
    for path in data_files:
        with open(path, "rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()


def save(path: Path, fingerprint: str, parts: dict) -> None:
    """`parts`: plain data and state_dicts (fit state, model, optimizer, scheduler, RNG)."""
    torch_save({"version": VERSION, "fingerprint": fingerprint, **parts}, path)


def load(path: Path, fingerprint: str) -> dict | None:
    """The checkpoint at `path` if it belongs to these params and data, else None: silently when
    there is none, with a printed line when it is unreadable (never raised: a bad checkpoint must
    not stop training) or from another run."""
    if not path.exists():
        return None
    try:
        blob = torch_files.load(path, what="a training checkpoint", missing=FROM_EPOCH_1,
                                fix=FROM_EPOCH_1)
    except MnistError as error:
        print(f"ignoring checkpoint: {error}")
        return None
    if not isinstance(blob, dict):
        print(f"ignoring checkpoint: {path} holds a {type(blob).__name__}, not a training "
              f"checkpoint: {FROM_EPOCH_1}")
        return None
    if blob.get("version") != VERSION or blob.get("fingerprint") != fingerprint:
        print(f"ignoring checkpoint {path}: it was made with other params or data; {FROM_EPOCH_1}")
        return None
    return blob
