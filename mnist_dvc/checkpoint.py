"""Resumable training: save the state after every epoch, load it back only if it belongs to this run."""

import hashlib
import json
from pathlib import Path

import torch

from mnist_dvc.atomic import torch_save
from mnist_dvc.params import Params, as_dict

VERSION = 2


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
    """The checkpoint at `path` if it belongs to these params and data, else None (with a message)."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        ok = blob.get("version") == VERSION and blob.get("fingerprint") == fingerprint
    except Exception as exc:
        print(f"ignoring checkpoint {path}: unreadable ({type(exc).__name__}); training from epoch 1")
        return None
    if not ok:
        print(f"ignoring checkpoint {path}: it was made with other params or data; "
              "training from epoch 1")
        return None
    return blob
