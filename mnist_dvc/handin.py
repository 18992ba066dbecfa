"""What the course grades, and the file handed in to it.

The course loads `hw7_<student id>_<name>.pth` into its own MyConvNet, whose forward ends in a
softmax, and for each test image *samples* a label from that softmax instead of taking the argmax.
Its expected score is the mean probability of the true label: label smoothing 0.1 trains that
toward 0.91 (0.9 + 0.1/10), so the model loses points on images whose argmax is right. Multiplying the last
layer's weight and bias by a factor T > 1 multiplies the logits by T: every argmax stays, the
softmax sharpens, and the expected score rises to the argmax accuracy.
"""

import re
from pathlib import Path

import torch

from mnist_dvc.errors import MnistError
from mnist_dvc.inference import accuracy

LAST_LAYER = "fc.4"  # MyConvNet's (and the course's) Linear(98, 10)
# Sharpening factors tried, smallest first. The rule: the smallest whose expected graded accuracy on
# valid is within TOLERANCE of valid's argmax accuracy; none is: the one that scores highest there.
FACTORS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0)
TOLERANCE = 0.0005


def true_class_probability(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """softmax(logits)[i, labels[i]] for each row, in float64."""
    return logits.double().softmax(dim=1).gather(1, labels.long()[:, None]).squeeze(1)


def expected_score(true_probabilities: torch.Tensor) -> tuple[float, float]:
    """The course's grader's expected score and its standard deviation, from each image's
    probability p of its true label: each image is a coin that comes up right with probability p,
    so the score's mean is mean(p) and its variance sum p(1 - p) / n^2."""
    p = true_probabilities.double()
    if not len(p):
        return 0.0, 0.0
    return p.mean().item(), (p * (1 - p)).sum().sqrt().item() / len(p)


def graded_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The expected score of the course's grader (a label sampled from the softmax of each image):
    the mean probability of the true label. Deterministic: no sampling happens here."""
    return expected_score(true_class_probability(logits, labels))[0]


def graded_accuracy_sd(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Standard deviation of the grader's score around that expectation (see expected_score)."""
    return expected_score(true_class_probability(logits, labels))[1]


def choose_factor(valid_logits: torch.Tensor, valid_labels: torch.Tensor) -> float:
    """The sharpening factor, by the rule above FACTORS (valid data only: test never chooses)."""
    argmax = accuracy(valid_logits, valid_labels)
    scores = {t: graded_accuracy(valid_logits * t, valid_labels) for t in FACTORS}
    for factor in FACTORS:
        if scores[factor] >= argmax - TOLERANCE:
            return factor
    return max(FACTORS, key=lambda t: (scores[t], -t))


def sharpened(state: dict, factor: float) -> dict:
    """A copy of a MyConvNet state_dict with the last layer's weight and bias times `factor`,
    as plain contiguous CPU tensors (what the course's load_state_dict expects)."""
    out = {key: value.detach().to("cpu").clone(memory_format=torch.contiguous_format)
           for key, value in state.items()}
    for key in (f"{LAST_LAYER}.weight", f"{LAST_LAYER}.bias"):
        out[key] = out[key] * factor
    return out


def file_name(student_id: str, name: str) -> str:
    """The course's name for the hand-in: hw7_<student id>_<name in pinyin>.pth."""
    if not re.fullmatch(r"[0-9]+", student_id):
        raise MnistError(f"student id {student_id!r} must be digits only: pass your student "
                         "number, e.g. mnist-dvc handin 21000000 zhangsan")
    if not re.fullmatch(r"[A-Za-z]+", name):
        raise MnistError(f"name {name!r} must be ASCII letters only: write it in pinyin without "
                         "spaces, tones or accents, e.g. zhangsan")
    return f"hw7_{student_id}_{name}.pth"


def output_path(folder: Path, student_id: str, name: str) -> Path:
    if not folder.is_dir():
        raise MnistError(f"output folder {folder} does not exist: create it (mkdir -p {folder}) "
                         "or pass an existing one with --out")
    return folder / file_name(student_id, name)


def grade(valid: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor]) -> dict:
    """The factor chosen on valid, and per split (logits, labels) the argmax accuracy and the
    expected graded accuracy before and after sharpening (with its standard deviation)."""
    factor = choose_factor(*valid)
    result = {"factor": factor}
    for split, (logits, labels) in (("valid", valid), ("test", test)):
        result[split] = {
            "argmax": accuracy(logits, labels),
            "graded": graded_accuracy(logits, labels),
            "graded_sd": graded_accuracy_sd(logits, labels),
            "handin_graded": graded_accuracy(logits * factor, labels),
            "handin_graded_sd": graded_accuracy_sd(logits * factor, labels),
        }
    return result
