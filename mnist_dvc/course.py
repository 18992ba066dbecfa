"""The course's side of hw7, as the course wrote it: its MyConvNet, the way it loads a hand-in, and
its sampling loop; and a hw7 file graded that way. Kept literal (ReLU before max-pool, softmax in
forward, one image at a time) so that what it scores is what the course scores, whatever the
project's own model does."""

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.distributions import Categorical
from tqdm import tqdm

from mnist_dvc.digits import Digits
from mnist_dvc.handin import expected_score
from mnist_dvc.inference import accuracy
from mnist_dvc.model import check_state_dict, read_state_dict, without_ddp_prefix

# The fix for a file the course could not grade: what it must hold.
SAVE_FIX = ("hand in a state_dict of the course's MyConvNet, saved with "
            "torch.save(net.state_dict(), path)")


class CourseConvNet(nn.Module):
    """The course's MyConvNet: blocks `cnn` (conv, BN, ReLU, max-pool, twice) and `fc`, softmax at
    the end of forward, a 3-D (1, 28, 28) input unsqueezed to a batch of one. Same state_dict keys
    and shapes as mnist_dvc.model.MyConvNet."""

    def __init__(self):
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(1, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Sequential(nn.Linear(6272, 784), nn.ReLU(), nn.Linear(784, 98), nn.ReLU(),
                                nn.Linear(98, 10))

    def forward(self, x):
        if x.dim() == 3:
            x = x.unsqueeze(0)
        out = self.cnn(x)
        out = out.view(out.size(0), -1)
        return torch.softmax(self.fc(out), dim=-1)


def load_course_net(path: str | Path) -> CourseConvNet:
    """The course's loading, strict: `net.load_state_dict(torch.load(path))`, in eval mode.
    weights_only=True is written out (torch >= 2.6 defaults to it): no pickled code runs.

    Deliberately not torch_files.load: this is the yardstick that shows a file loads the way the
    course loads it, so it stays the course's one line, raising torch's own errors as the course
    would (and loading where the file says, not on the CPU). Files from users go through
    load_checked, which reads them with torch_files.load."""
    net = CourseConvNet()
    net.load_state_dict(torch.load(path, weights_only=True))
    return net.eval()


def course_inputs(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) digits as the course feeds them: float (N, 1, 28, 28) in [0, 1]."""
    return images.float().div(255).unsqueeze(1)


def course_grade(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, seed: int,
                 progress: str | None = None) -> float:
    """The course's loop, literally: seed the global RNG, then for each image one (1, 28, 28) float
    [0, 1] tensor through the net and a label *sampled* from its softmax; the fraction right.
    With `progress`, a tqdm bar with that label counts the images on stderr (on a terminal)."""
    net.eval()
    torch.manual_seed(seed)
    num_correct = 0
    with torch.no_grad():
        pairs = zip(course_inputs(images), labels, strict=True)
        for feature, true_label in tqdm(pairs, total=len(labels), desc=progress, unit="image",
                                        leave=False, disable=None if progress else True):
            prob = net(feature).detach()
            label = Categorical(prob).sample().item()
            num_correct += int(label == true_label.item())
    return num_correct / len(labels) if len(labels) else 0.0


@dataclass(frozen=True)
class Checked:
    """A hw7 file loaded into the course's class after the project's checks."""

    net: CourseConvNet
    ddp_prefix: bool  # keys were `module.<name>`: the course's strict load_state_dict refuses them


def load_checked(path: str | Path) -> Checked:
    """The course's class holding the weights saved at `path`, in eval mode, refusing with one
    MnistError what the course could not grade: a missing file, a file torch.save did not write, a
    pickled object that could run code (never run), not a state_dict, other layers or shapes (the
    first one named). DistributedDataParallel's `module.` prefix is taken off."""
    path = Path(path)
    state = read_state_dict(path, fix=SAVE_FIX, missing="check the path and the file name")
    plain = without_ddp_prefix(state)
    net = CourseConvNet()
    check_state_dict(net, plain, str(path), fix=SAVE_FIX)
    net.load_state_dict(plain)
    return Checked(net.eval(), ddp_prefix=plain is not state)


@torch.no_grad()
def probabilities(net: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """The course's net's softmax output for uint8 (N, 28, 28) digits, (N, 10), in batches: the
    same model as the one-image loop, faster (for argmax and the expected score only)."""
    net.eval()
    parts = [net(course_inputs(images[i:i + batch_size])) for i in range(0, len(images), batch_size)]
    return torch.cat(parts) if parts else torch.zeros(0, 10)


@dataclass(frozen=True)
class Score:
    """What the course gives a file on one test set."""

    argmax: float  # accuracy when the likeliest digit is taken (not what the course does)
    graded: float  # the sampling grader's expected score: mean probability of the true label
    graded_sd: float  # its standard deviation over the grader's draws
    sampled: dict[int, float]  # seed -> the course's literal loop run with that seed


def score(net: nn.Module, test: Digits, seeds: list[int]) -> Score:
    """Argmax accuracy, expected graded score with its sd, and the literal loop once per seed."""
    prob = probabilities(net, test.images)
    argmax = accuracy(prob, test.labels)
    graded, sd = expected_score(prob.gather(1, test.labels[:, None]).squeeze(1))
    sampled = {seed: course_grade(net, test.images, test.labels, seed) for seed in seeds}
    return Score(argmax, graded, sd, sampled)
