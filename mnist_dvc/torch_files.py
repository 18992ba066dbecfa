"""Reading a file written by torch.save, safely: on the CPU with weights_only=True, so a pickled
object that could run code is refused without running it, and each way the file can be wrong is
one line naming the problem and ending in the caller's fix."""

import re
import warnings
import zipfile
from pathlib import Path

import torch

from mnist_dvc.errors import MnistError

PICKLE_START = b"\x80"  # the PROTO opcode that begins every pickle of protocol 2 or later
WHOLE_MODEL = "torch.nn.modules."  # the module of every layer class a whole pickled model names


def load(path: str | Path, *, what: str, missing: str, fix: str):
    """What torch.save wrote at `path`, or one MnistError line. `what` names the file expected
    ("a weights file"); `missing` is the fix for a path with no file (missing, or a folder), `fix`
    the fix for a file that is there but wrong. Checking what it holds is the caller's job."""
    path = Path(path)
    if path.is_dir():
        raise MnistError(f"{path} is a folder, not {what}: {missing}")
    if not path.is_file():
        raise MnistError(f"{path} is missing: {missing}")
    try:
        with warnings.catch_warnings():  # torch warns about a pickle's protocol before refusing
            warnings.simplefilter("ignore")  # it: the one line below says what happened
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise MnistError(f"{path} {refusal(path, error)}: {fix}") from None


def refusal(path: Path, error: Exception) -> str:
    """Why torch.load(weights_only=True) refused the file at `path`, as the middle of one line."""
    # torch names the global it refused in two wordings: "Unsupported global: GLOBAL exec was not
    # an allowed global" and "unsupported GLOBAL posix.system whose module posix is blocked".
    found = re.search(r"\bGLOBAL ([\w.]+)", str(error))
    if found:
        if any(name.startswith(WHOLE_MODEL) for name in unsafe_globals(path)):
            return (f"holds a whole pickled model, refused unread: loading it would run its code "
                    f"({found.group(1)}); you saved the whole model (torch.save(net)), not its "
                    "state_dict")
        return f"holds a pickled object that could run code ({found.group(1)}), refused unread"
    if not zipfile.is_zipfile(path) and first_byte(path) == PICKLE_START:
        return ("is a plain pickle (pickle.dump), not a torch.save file: refused unread (a pickle "
                "can run code)")
    return (f"is not a file written by torch.save, or it is cut short or corrupt "
            f"({type(error).__name__})")


def unsafe_globals(path: Path) -> list[str]:
    """The globals a torch.save file names that weights_only refuses, read from the pickle's
    opcodes (nothing is run); none for a file torch.save did not write."""
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:
        return []


def first_byte(path: Path) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(1)
    except OSError:  # unreadable: torch's own error is named instead
        return b""
