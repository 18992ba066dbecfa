"""Every loader of torch.save files refuses the same broken and malicious files the same way:
one MnistError line naming the file and its problem, ending in that loader's fix, and no pickled
code run. The files are built once; each (file, loader) pair is its own test.

The bugs this catches: a loader that bypasses mnist_dvc.torch_files with its own message (the five
loaders had drifted: os.system called "not a file written by torch.save" in one, everything "not a
dataset file" in another), weights_only=False anywhere (the marker file appears), a fix that does
not fit the loader, a raw torch exception or a second line escaping, and a bad checkpoint that
stops training instead of being ignored."""

import io
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from mnist_dvc import checkpoint, course, digits, model, starter_files
from mnist_dvc.errors import MnistError

MARKER = "PWNED"  # what the malicious files would create in their folder, were their code run


class RunsShell:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def cut_short(path: Path) -> None:
    """The first half of a torch.save file, as a half-finished copy leaves it."""
    buffer = io.BytesIO()
    torch.save({"cnn.0.weight": torch.zeros(64, 1, 3, 3)}, buffer)
    path.write_bytes(buffer.getvalue()[:len(buffer.getvalue()) // 2])


# name -> (how to write it: a function of its path, or None for no file; the problem the line
# names after the path: "(ERROR)" stands for the name of torch's exception, WHAT and NOT_THAT for
# the loader's own words)
CORRUPT = "is not a file written by torch.save, or it is cut short or corrupt (ERROR)"
PLAIN_PICKLE = ("is a plain pickle (pickle.dump), not a torch.save file: refused unread (a pickle can "
                "run code)")
FILES = {
    "missing": (None, "is missing"),
    "folder": (Path.mkdir, "is a folder, not WHAT"),
    "empty": (Path.touch, CORRUPT),
    "truncated": (cut_short, CORRUPT),
    "random bytes": (lambda p: p.write_bytes(bytes(range(7, 256)) * 16), CORRUPT),
    "plain pickle": (lambda p: p.write_bytes(pickle.dumps({"cnn.0.weight": [1.0]})), PLAIN_PICKLE),
    "os.system in a plain pickle": (lambda p: p.write_bytes(pickle.dumps(RunsShell(p.parent / MARKER))),
                                    PLAIN_PICKLE),
    "os.system in torch.save": (lambda p: torch.save({"cnn.0.weight": RunsShell(p.parent / MARKER)}, p),
                                f"holds a pickled object that could run code ({os.system.__module__}"
                                ".system), refused unread"),
    "exec in torch.save": (lambda p: torch.save({"cnn.0.weight": RunsCode(p.parent / MARKER)}, p),
                           "holds a pickled object that could run code (exec), refused unread"),
    "whole model": (lambda p: torch.save(nn.Sequential(nn.Linear(2, 2)), p),
                    "holds a whole pickled model, refused unread: loading it would run its code "
                    "(torch.nn.modules.container.Sequential); you saved the whole model "
                    "(torch.save(net)), not its state_dict"),
    "list": (lambda p: torch.save([1, 2, 3], p), "holds a list, not NOT_THAT"),
}


@dataclass(frozen=True)
class Loader:
    load: Callable[[Path], object]
    what: str  # what the folder is not
    not_that: str  # what a file holding a list is not
    missing: str  # the fix for no file or a folder
    fix: str  # the fix for a bad file


STARTER_NAMES = "train_data.pth, train_labels.pth, test_data.pth, test_labels.pth"
LOADERS = {
    "model.read_state_dict": Loader(model.read_state_dict, "a weights file", "a state_dict",
                                    "run the train stage first (dvc repro train)",
                                    "retrain with dvc repro train"),
    "model.load_model": Loader(lambda p: model.load_model(p, missing="check the path"),
                               "a weights file", "a state_dict", "check the path",
                               "retrain with dvc repro train"),
    "starter_files.load_tensor": Loader(starter_files.load_tensor, "a tensor file", "a dense tensor",
                                        f"the starter code's dataset is four files ({STARTER_NAMES}); "
                                        "put all four in FOLDER",
                                        "save the tensor itself, torch.save(torch.as_tensor(x), path)"),
    "digits.load_digits": Loader(digits.load_digits, "a dataset file written by the split stage",
                                 "a dataset file written by the split stage",
                                 "run the split stage first (dvc repro split)",
                                 "rerun dvc repro split"),
    "checkpoint.load": Loader(lambda p: checkpoint.load(p, "fingerprint"), "a training checkpoint",
                              "a training checkpoint", "training from epoch 1",
                              "training from epoch 1"),
    "course.load_checked": Loader(course.load_checked, "a weights file", "a state_dict",
                                  "check the path and the file name",
                                  "hand in a state_dict of the course's MyConvNet, saved with "
                                  "torch.save(net.state_dict(), path)"),
}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> Path:
    """The folder holding one file per entry of FILES, named after it."""
    folder = tmp_path_factory.mktemp("bad_files")
    for name, (write, _) in FILES.items():
        if write is not None:
            write(folder / name)
    return folder


@pytest.fixture(autouse=True)
def no_code_ran(bad_files):
    yield
    ran = (bad_files / MARKER).exists()
    (bad_files / MARKER).unlink(missing_ok=True)  # so one failure does not fail every later test
    assert not ran, "a loader ran the pickled code"


def refusal(loader: Loader, path: Path, capsys) -> str:
    """The line `loader` refuses `path` with: raised, or printed by checkpoint.load (which must not
    raise: a bad checkpoint does not stop training)."""
    if loader is LOADERS["checkpoint.load"]:
        assert loader.load(path) is None
        out = capsys.readouterr().out
        assert out.startswith("ignoring checkpoint: ") and out.endswith("\n"), out
        return out.removeprefix("ignoring checkpoint: ").removesuffix("\n")
    with pytest.raises(MnistError) as caught:
        loader.load(path)
    return str(caught.value)


@pytest.mark.parametrize("loader_name", LOADERS)
@pytest.mark.parametrize("file_name", FILES)
def test_bad_file_is_one_line_naming_it_its_problem_and_the_loaders_fix(
        bad_files, capsys, file_name, loader_name):
    loader, path = LOADERS[loader_name], bad_files / file_name
    if file_name == "missing" and loader_name == "checkpoint.load":
        assert loader.load(path) is None  # the first run has none: nothing to say
        assert capsys.readouterr().out == ""
        return
    problem = FILES[file_name][1].replace("NOT_THAT", loader.not_that).replace("WHAT", loader.what)
    fix = loader.missing if file_name in ("missing", "folder") else loader.fix
    expected = re.escape(f"{path} {problem}: {fix.replace('FOLDER', str(bad_files))}")
    message = refusal(loader, path, capsys)
    assert "\n" not in message
    assert re.fullmatch(expected.replace(re.escape("(ERROR)"), r"\(\w+\)"), message), message
