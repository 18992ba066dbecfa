"""predict on image files: as accurate as the evaluate stage on the same digits, reads typeset
digits, batches its work, and its command line answers every good file and names every bad one."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from in_process import run_module
from PIL import Image, ImageDraw, ImageFont
from repo_helpers import mark_project
from small_model import small_project

from mnist_dvc import calibrated, classify, doubts, handin, images, inference, training
from mnist_dvc import paths as mnist_paths
from mnist_dvc.device import FP32
from mnist_dvc.digits import Digits
from mnist_dvc.download import md5_of
from mnist_dvc.model import MyConvNet
from mnist_dvc.params import parse_params, with_overrides

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
N_DIGITS = 1000  # test digits written to files in every variant: the mean shared probability of a
# variant is then known to ±0.002 (one standard error), a fifth of the margins around MIN_SHARED
MIN_SHARED = 0.955  # see test_files_are_read_as_well_as_the_tensors


@pytest.fixture(scope="module")
def model(small_model):
    """The session's small model (tests/small_model.py: one epoch on 6,000 digits, about 95%)."""
    net = MyConvNet()
    net.load_state_dict(torch.load(small_model.weights, weights_only=True))
    return net.eval()


@pytest.fixture(scope="module")
def model_without_smoothing(default_raw, mnist_train, mnist_test):
    """A MyConvNet trained here for one epoch on 5,000 real digits, no augmentation and no label
    smoothing (about 95%): the model the file and typeset tests were measured on. (On the session's
    small model the typeset digits score 70% too, but a squeezed image 47%, too close to 60%.)"""
    params = parse_params(with_overrides(default_raw, {
        "train.epochs": 1, "train.batch_size": 64, "train.precision": "fp32", "scheduler": "constant",
        "train.augment": False, "train.label_smoothing": 0.0}))
    splits = training.Splits(mnist_train.take(torch.arange(5000)),
                             mnist_train.take(torch.arange(5000, 5500)), mnist_test.take(torch.arange(50)))
    state = training.fit(params, splits, training.Run(CPU, FP32, progress=False))
    net = MyConvNet()
    net.load_state_dict(state.best_state)
    return net.eval()


@pytest.fixture(scope="module")
def model_file(small_model) -> Path:
    """The session's small model's weights file (read-only)."""
    return small_model.weights


@pytest.fixture(scope="module")
def project(small_model, valid, tmp_path_factory) -> Path:
    """A project (dvc.yaml, params.yaml) holding the model and 500 valid digits it was not trained
    on: what predict reads to calibrate. No dvc.lock: the factor is chosen on valid."""
    return small_project(tmp_path_factory.mktemp("project"), small_model, valid=valid)


@pytest.fixture(scope="module")
def valid(small_model) -> Digits:
    """500 of the small model's valid digits (training digits it was not trained on)."""
    return small_model.valid.take(torch.arange(500))


def upscale(image: Image.Image, size: int) -> Image.Image:
    return image if size == image.width else image.resize((size, size), Image.Resampling.BICUBIC)


def on_paper(ink: Image.Image, ink_colour, paper_colour, canvas, at) -> Image.Image:
    """`ink` (L, 255 = full ink) drawn in `ink_colour` on a `canvas`-sized sheet of `paper_colour`."""
    mode = "L" if isinstance(paper_colour, int) else "RGB"
    sheet = Image.new(mode, canvas, paper_colour)
    sheet.paste(Image.new(mode, ink.size, ink_colour), at, mask=ink)
    return sheet


def transparent_sheet(ink: Image.Image) -> Image.Image:
    """Black ink on a transparent sheet, the way drawing programs save it: opacity = ink."""
    sheet = Image.new("RGBA", ink.size, (0, 0, 0, 0))
    sheet.putalpha(ink)
    return sheet


# Each variant: a file suffix, and how one MNIST digit (L, white ink on black, 28 px) becomes it.
# (Opaque paper in a transparent frame, palette, 16-bit, EXIF: tests/test_images.py, one digit each.)
VARIANTS = {
    "28px light ink, no margin": (".png", lambda d: d),
    "28px dark ink, margins, BMP": (".bmp", lambda d: on_paper(d, 0, 255, (44, 36), (5, 3))),
    "64px blue ink on cream, margins, RGB": (".png", lambda d: on_paper(
        upscale(d, 64), (20, 40, 160), (245, 240, 225), (90, 80), (20, 6))),
    "64px chalk on green board, no margin, RGB": (".png", lambda d: on_paper(
        upscale(d, 64), (240, 240, 230), (30, 60, 40), (64, 64), (0, 0))),
    "200px black on transparent, RGBA": (".png", lambda d: transparent_sheet(upscale(d, 200))),
    "200px dark ink, margins, JPEG": (".jpg", lambda d: on_paper(
        upscale(d, 200), 0, 255, (260, 230), (40, 10))),
}


def write_variants(digits: Digits, folder: Path) -> dict[str, list[Path]]:
    files = {}
    for v, (name, (suffix, make)) in enumerate(VARIANTS.items()):
        files[name] = []
        for i, image in enumerate(digits.images):
            path = folder / f"v{v}_{i:04d}{suffix}"
            make(Image.fromarray(image.numpy())).save(path, quality=92)
            files[name].append(path)
    return files


def accuracy(answers, labels) -> float:
    assert all(a.error is None for a in answers), [a.error for a in answers if a.error][:3]
    return sum(a.digit == y for a, y in zip(answers, labels.tolist(), strict=True)) / len(labels)


def probabilities(answers) -> torch.Tensor:
    """(N, 10) softmax outputs from classify's answers (asked with top=10)."""
    assert all(a.error is None for a in answers), [a.error for a in answers if a.error][:3]
    found = torch.zeros(len(answers), 10)
    for row, answer in zip(found, answers, strict=True):
        for digit, p in answer.top:
            row[digit] = p
    return found


@pytest.mark.slow
def test_files_are_read_as_well_as_the_tensors(model_without_smoothing, mnist_test, tmp_path):
    """The model sees a digit read from a file as it sees the same digit as a tensor: in every
    file variant, the softmax outputs of the two share at least MIN_SHARED (95.5%) of their
    probability mass, on average over the 1,000 digits (shared: the sum over digits of the smaller
    of the two probabilities, 1 - their total variation distance; so the course grader's expected
    score, a label drawn from the softmax, differs by at most 4.5 points between the two).

    Catches any preprocessing step that drifts from how MNIST was made (digit too small or too
    big, centred half a pixel off, blurred, wrong polarity, alpha composited onto the wrong colour,
    a JPEG or BMP decoded differently). Measured per variant on 8 models (this fixture and a cosine
    schedule, 4 seeds each): clean code shares 0.964-0.976; centred half a pixel off 0.930-0.944,
    scaled to 18 px instead of 20 0.910-0.944, blurred twice (scaled, then shifted by a separate
    resampling) 0.920-0.937. The bound is 4.5 standard errors (0.002) below the worst clean run,
    2.5 of theirs (0.004) above the mildest of these bugs.

    Not accuracy: which borderline digits flip either way between the two routes depends on the
    machine's arithmetic: over those 8 models the files scored from 1.2 points below the tensors
    to 0.7 above on clean code, and from 3.9 below to 0.3 above with these bugs (a 0.5-point
    bound failed clean code on a Xeon)."""
    model = model_without_smoothing
    digits = mnist_test.take(torch.arange(N_DIGITS))
    reference = inference.logits_of(model, digits).softmax(dim=1)
    files = write_variants(digits, tmp_path)
    shared, correct = {}, {}
    for name, paths in files.items():
        found = probabilities(list(classify.classify(model, paths, top=10)))
        shared[name] = torch.minimum(found, reference).sum(dim=1).mean().item()
        correct[name] = (found.argmax(dim=1) == digits.labels).double().mean().item()
    report = "; ".join(f"{name}: shared {shared[name]:.4f}, accuracy {correct[name]:.3f}"
                       for name in files)
    tensors = (reference.argmax(dim=1) == digits.labels).double().mean().item()
    assert min(shared.values()) >= MIN_SHARED, f"{report} (as tensors: accuracy {tensors:.3f})"


def render(digit: int, size: int, dark_ink: bool) -> Image.Image:
    """`digit` typeset in Pillow's default font at `size` px, with a margin of half the size."""
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(str(digit))
    sheet = Image.new("L", (right - left + size, bottom - top + size), 255 if dark_ink else 0)
    ImageDraw.Draw(sheet).text((size // 2 - left, size // 2 - top), str(digit), font=font,
                               fill=0 if dark_ink else 255)
    return sheet


@pytest.mark.slow
def test_typeset_digits_are_read(model_without_smoothing, tmp_path):
    """Digits 0-9 typeset at 24, 48 and 96 px, dark on light and light on dark: 60 images.

    Threshold 60%. A model trained on handwriting misreads some typeset shapes whatever the
    preprocessing, each at every size and polarity: this font's 1 has a flag and a foot (read as
    7), its 6 and 9 closed round loops (read as 0 or 8). Measured: 70% with this test's model, 80%
    with one trained two epochs on 4,000 digits. Broken preprocessing falls far below: the polarity
    chosen wrong scores 10%, the whole image squeezed to 28×28 instead of cropped and scaled 30-37%.
    (Centring the box instead of the mass scores 67%: test_images checks the centring.)"""
    cases = [(d, size, dark) for d in range(10) for size in (24, 48, 96) for dark in (True, False)]
    paths = []
    for i, (d, size, dark) in enumerate(cases):
        paths.append(tmp_path / f"{i}.png")
        render(d, size, dark).save(paths[-1])
    answers = list(classify.classify(model_without_smoothing, paths))
    labels = torch.tensor([d for d, _, _ in cases])
    assert accuracy(answers, labels) >= 0.6, [(c, a.digit) for c, a in zip(cases, answers, strict=True)
                                              if a.digit != c[0]]


class CountingModel(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.batches = model, []

    def forward(self, x):
        self.batches.append(len(x))
        return self.model(x)


def test_files_go_through_the_model_in_batches_and_answers_keep_their_order(model, mnist_test,
                                                                            tmp_path, capsys):
    """Catches one forward pass per file (slow on 10,000 images), bad files breaking a batch or
    shifting the answers of the files after them, and a progress bar written off a terminal."""
    paths = []
    for i in range(9):
        paths.append(tmp_path / f"{i}.png")
        if i in (2, 7):
            paths[-1].write_text("not an image")
        else:
            Image.fromarray(mnist_test.images[i].numpy()).save(paths[-1])
    counting = CountingModel(model)
    answers = list(classify.classify(counting, paths, top=3, batch_size=4))
    assert counting.batches == [3, 3, 1]  # 4 + 4 + 1 files, one bad file in each of the first two
    assert [a.path for a in answers] == paths
    assert [a.error is not None for a in answers] == [i in (2, 7) for i in range(9)]
    for answer in answers:  # the same answer as the file alone: batch rows are not mixed up
        if answer.error is None:
            assert next(classify.classify(model, [answer.path])).digit == answer.digit
    for a in answers:
        if a.error is None:
            probabilities = [p for _, p in a.top]
            assert a.top[0][0] == a.digit and a.probability == probabilities[0]
            assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-6
    assert capsys.readouterr().err == ""  # stderr is not a terminal here: no bar


def predict_in_a_process(*args, cwd):
    """The command end to end, as a user runs it: test_cli_answers_good_files_and_names_each_bad_one."""
    return subprocess.run([sys.executable, "-m", "commands.predict", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def predict(*args, cwd):
    """`python -m commands.predict ARGS` in this process (tests/in_process.py)."""
    return run_module("commands.predict", *args, cwd=cwd)


def test_cli_answers_good_files_and_names_each_bad_one(model_file, project, mnist_test, tmp_path):
    """Exit 1, one JSON object per good image (folder contents included, in name order), one stderr
    line per bad path naming it. Catches a bad file stopping the run or taking others with it,
    errors that are tracebacks or several lines, and a JSON shape that drifts."""
    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(mnist_test.images[i].numpy()).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not looked at: not an image suffix")
    good = tmp_path / "good.png"
    Image.fromarray(255 - mnist_test.images[3].numpy()).save(good)
    bad = {"missing.png": None, "text.png": b"hello", "cut.png": good.read_bytes()[:200],
           "blank.png": "blank", "empty": "folder"}
    for name, content in bad.items():
        if content == "blank":
            Image.new("L", (40, 40), 255).save(tmp_path / name)
        elif content == "folder":
            (tmp_path / name).mkdir()
        elif content is not None:
            (tmp_path / name).write_bytes(content)
    result = predict_in_a_process(folder, tmp_path / "missing.png", good, tmp_path / "text.png",
                     tmp_path / "cut.png", tmp_path / "blank.png", tmp_path / "empty",
                     "--json", "--top", "3", "--model", model_file, cwd=project)
    assert result.returncode == 1, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["path"]).name for r in rows] == ["0.png", "1.png", "2.png", "good.png"]
    assert [r["digit"] for r in rows] == mnist_test.labels[:4].tolist()
    for r in rows:
        assert set(r) == {"path", "digit", "probability", "top", "doubt", "calibration"}
        assert len(r["top"]) == 3 and r["top"][0] == {"digit": r["digit"], "probability": r["probability"]}
        assert 0 < r["probability"] <= 1
    errors = result.stderr.splitlines()
    assert len(errors) == len(bad), result.stderr
    for name in bad:
        line = [e for e in errors if f"{tmp_path / name}:" in e]
        assert len(line) == 1 and line[0].startswith("error: "), (name, errors)
    assert "Traceback" not in result.stderr


def test_cli_text_output_and_exit_codes(model_file, project, mnist_test, tmp_path):
    """All good: exit 0, the line naming the probabilities, then `PATH: DIGIT (P)` per image,
    nothing on stderr (no bar off a terminal). No model in the project: exit 2 and one line saying
    how to get one; a mistyped --model: check the path (not "retrain"). A bad --top: a usage error."""
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(mnist_test.images[i].numpy()).save(paths[-1])
    result = predict(*paths, "--model", model_file, cwd=project)
    assert result.returncode == 0 and result.stderr == ""
    header, *lines = result.stdout.splitlines()
    assert header.startswith("predict: calibrated probabilities: softmax of the logits x"), header
    assert len(lines) == 2
    for path, line, label in zip(paths, lines, mnist_test.labels.tolist()[:2], strict=True):
        assert re.fullmatch(rf"{re.escape(str(path))}: {label} \(\d\.\d{{4}}\)", line), line

    typo = predict(paths[0], "--model", tmp_path / "none.pt", cwd=project)
    assert typo.returncode == 2 and typo.stdout == ""
    assert typo.stderr == f"error: {tmp_path / 'none.pt'} is missing: check the path\n"
    empty = mark_project(tmp_path / "empty")
    missing = predict(paths[0], cwd=empty)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.count("\n") == 1 and "dvc repro train" in missing.stderr

    assert predict(paths[0], "--top", "0", "--model", model_file, cwd=project).returncode == 2


def test_cli_probabilities_are_calibrated_and_say_so(model, project, valid, mnist_test, tmp_path):
    """predict's probabilities are softmax(logits × the hand-in's factor), the factor chosen on the
    project's valid set as the hand-in command chooses it, and the output says so; --raw gives the
    model's own softmax. Catches the raw, under-confident softmax reported (the old "7 (0.49)"
    style), a factor from the wrong data or never applied, and output that hides which it is."""
    files = []
    for i in range(3):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(mnist_test.images[i].numpy()).save(files[-1])
    factor = handin.choose_factor(inference.logits_of(model, valid), valid.labels)
    assert factor > 1, "the fixture model should need sharpening, or this test shows nothing"
    with torch.no_grad():
        logits = model(torch.stack([images.load_digit(f) for f in files]))
    for args, scale in (([], factor), (["--raw"], 1.0)):
        done = predict(*files, "--json", "--top", "10", *args, cwd=project)
        assert done.returncode == 0, done.stderr
        rows = [json.loads(line) for line in done.stdout.splitlines()]
        assert [r["calibration"] for r in rows] == [scale] * 3
        for row, want in zip(rows, torch.softmax(logits * scale, dim=1), strict=True):
            got = [p for _, p in sorted((t["digit"], t["probability"]) for t in row["top"])]
            assert got == pytest.approx(want.tolist(), abs=1e-5)
    header = predict(files[0], cwd=project).stdout.splitlines()[0]
    assert header == (f"predict: calibrated probabilities: softmax of the logits x{factor:g}, the "
                      "hand-in's factor (chosen now on the project's 500 valid images)")


def test_recorded_factor_belongs_to_the_model_it_was_recorded_for(project, tmp_path):
    """The factor in metrics/test.json is used only while dvc.lock says the evaluate stage made
    that file from this very model file. Catches a stale factor (another model, an edited
    test.json) applied silently: calibrated probabilities that are not."""
    root = shutil.copytree(project, tmp_path / "copy")
    test_json = root / mnist_paths.TEST_METRICS
    test_json.parent.mkdir()
    test_json.write_text('{"handin_factor": 7.0}\n')

    def lock(model_md5, json_md5):
        (root / mnist_paths.DVC_LOCK).write_text(
            "schema: '2.0'\nstages:\n  evaluate:\n    cmd: python -m stages.evaluate\n    deps:\n"
            f"    - path: models/model.pt\n      md5: {model_md5}\n    outs:\n"
            f"    - path: metrics/test.json\n      md5: {json_md5}\n")

    model_path = root / mnist_paths.MODEL
    lock(md5_of(model_path), md5_of(test_json))
    assert calibrated.recorded_factor(root, model_path) == 7.0
    lock("0" * 32, md5_of(test_json))
    assert calibrated.recorded_factor(root, model_path) is None
    lock(md5_of(model_path), "0" * 32)
    assert calibrated.recorded_factor(root, model_path) is None


def side_by_side(left: torch.Tensor, right: torch.Tensor, gap: int) -> Image.Image:
    """Two MNIST digits (white on black) in one image, their 28 px boxes `gap` px apart."""
    sheet = torch.zeros(28, 56 + gap, dtype=torch.uint8)
    sheet[:, :28] = left
    sheet[:, 28 + gap:] = torch.maximum(sheet[:, 28 + gap:], right)
    return Image.fromarray(sheet.numpy())


def test_two_digits_or_none_are_flagged(model_file, project, mnist_test, tmp_path):
    """A photo of two digits, or of no digit the model believes in, is answered `doubtful: ...`
    with what to do; single digits are not. Catches a pair answered "7 (0.49)" as if it were one
    digit, and a doubt rule so eager that it flags ordinary digits (measured: at most 2 of the
    1,000 test digits, at least 95% of 200 pairs)."""
    fields = [images.mnist_style(images.ink(mnist_test.images[i].numpy() / 255.0)) for i in range(1000)]
    assert sum(doubts.parts(f.numpy()) > 1 for f in fields) <= 2
    pairs = [side_by_side(mnist_test.images[i], mnist_test.images[999 - i], gap=i % 10 - 2)
             for i in range(200)]
    found = [doubts.parts(images.mnist_style(images.ink(np.asarray(p) / 255.0)).numpy()) for p in pairs]
    assert sum(n == 2 for n in found) >= 190, sum(n == 2 for n in found)
    assert doubts.doubt(fields[0].numpy(), 0.45).startswith("no digit is likely (the likeliest has 0.45)")
    assert doubts.doubt(fields[0].numpy(), 0.55) is None
    pairs[0].save(tmp_path / "pair.png")
    Image.fromarray(mnist_test.images[0].numpy()).save(tmp_path / "one.png")
    done = predict(tmp_path / "pair.png", tmp_path / "one.png", "--model", model_file, cwd=project)
    assert done.returncode == 0, done.stderr
    pair_line, one_line = done.stdout.splitlines()[1:]
    assert pair_line.endswith(" doubtful: 2 digits side by side? crop each digit into an image of "
                              "its own"), pair_line
    assert "doubtful" not in one_line, one_line
