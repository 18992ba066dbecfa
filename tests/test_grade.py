"""`python -m commands.grade`: any hw7 file graded the course's way (its class, its sampling loop),
on a small model trained here with label smoothing; and every file it must refuse."""

import argparse
import importlib
import io
import os
import pickle
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from repo_helpers import mark_project
from small_model import small_project

from commands import grade as grade_command
from commands import handin as handin_command
from mnist_dvc import calibration, course, find_mnist, metrics_files, paths
from mnist_dvc.cli import run_command, run_stage
from mnist_dvc.course import CourseConvNet, course_grade
from mnist_dvc.digits import Digits, save_digits
from mnist_dvc.inference import logits_of, loss_and_accuracy
from mnist_dvc.model import MyConvNet, load_model
from stages import evaluate as evaluate_stage

HANDIN = "hw7_21000000_zhangsan.pth"
LOOP_IMAGES = 300  # test images in a run of the course's literal loop (20 ms each)
SEED_IMAGES = 50  # test images in each of the ten loop runs that check its seeding


@pytest.fixture(scope="module")
def project(tmp_path_factory, small_model):
    """A project folder after train (the session's small model: one epoch, label smoothing 0.1,
    fp32), split (its 1,000 valid digits, the first 500 of its test digits), the evaluate stage
    and the hand-in command."""
    test = small_model.test.take(torch.arange(500))
    root = small_project(tmp_path_factory.mktemp("project"), small_model, small_model.valid, test)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setattr(sys, "argv", ["stages.evaluate"])
        run_stage(evaluate_stage.main)
        mp.setattr(sys, "argv", ["commands.handin", "21000000", "zhangsan"])
        run_command(handin_command.main, handin_command.INTERRUPTED)
    return root, test


def grade(monkeypatch, root, *args):
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "argv", ["commands.grade", *map(str, args)])
    run_command(grade_command.main, grade_command.INTERRUPTED)


def parse(line: str) -> dict:
    """`FILE: argmax A, expected graded E ± S` as numbers."""
    _, rest = line.split(": argmax ")
    argmax, rest = rest.split(", expected graded ")
    expected, sd = rest.split(" ± ")
    return {"argmax": float(argmax), "expected": float(expected), "sd": float(sd)}


def parse_sampled(line: str) -> dict[int, float]:
    """`FILE: sampled X (seed 0), Y (seed 1) (the course's loop, ...)` as {seed: score}."""
    runs = line.split(": sampled ")[1].split(" (the course's loop")[0]
    return {int(part.split("(seed ")[1].rstrip(")")): float(part.split()[0]) for part in runs.split(", ")}


def test_grade_of_the_handin_is_evaluates_handin_score(project, monkeypatch, capsys):
    """On the file the hand-in command wrote, grade's expected score is metrics/test.json's
    handin_test_acc_graded (the same 500 test images), and on models/model.pt it is
    test_acc_graded; the argmax is test_acc for both. Catches grade scoring another set of images,
    another preprocessing (no /255, normalised) or the logits instead of the softmax, and evaluate
    or the hand-in applying a factor the file does not hold."""
    root, test = project
    capsys.readouterr()
    grade(monkeypatch, root, HANDIN, paths.MODEL, "--runs", "0")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"grade: {len(test)} test images from {paths.prepared('test')}")
    handed_in, raw = parse(lines[1]), parse(lines[2])
    metrics = metrics_files.read_json(root / paths.TEST_METRICS)
    assert handed_in["expected"] == pytest.approx(metrics["handin_test_acc_graded"], abs=6e-5)
    assert raw["expected"] == pytest.approx(metrics["test_acc_graded"], abs=6e-5)
    assert handed_in["argmax"] == raw["argmax"] == pytest.approx(metrics["test_acc"], abs=6e-5)
    # Unrounded, through the library: equal to within float32's softmax.
    file = course.load_checked(root / HANDIN)
    assert course.score(file.net, test, []).graded == pytest.approx(
        metrics["handin_test_acc_graded"], abs=2e-6)


def test_evaluate_reports_calibration_of_the_raw_model_and_the_handin(project):
    """metrics/test.json's NLL and ECE and metrics/calibration.csv are those of the model's test
    logits and of the same logits times the hand-in's factor; smoothing leaves the raw model
    underconfident, the hand-in closer to calibrated. Catches the hand-in's numbers computed from
    the raw logits (the factor never applied), the two models' columns swapped, and NLL from the
    label-smoothed loss instead of the plain one."""
    root, test = project
    metrics = metrics_files.read_json(root / paths.TEST_METRICS)
    logits = logits_of(load_model(root / paths.MODEL), test)
    factor = metrics["handin_factor"]
    assert factor > 1
    raw_bins = calibration.reliability_bins(logits, test.labels)
    handin_bins = calibration.reliability_bins(logits * factor, test.labels)
    assert metrics["test_loss"] == pytest.approx(loss_and_accuracy(logits, test.labels)[0], abs=2e-6)
    assert metrics["handin_test_loss"] == pytest.approx(
        loss_and_accuracy(logits * factor, test.labels)[0], abs=2e-6)
    assert metrics["test_ece"] == pytest.approx(calibration.ece(raw_bins), abs=2e-6)
    assert metrics["handin_test_ece"] == pytest.approx(calibration.ece(handin_bins), abs=2e-6)
    assert metrics["handin_test_ece"] < metrics["test_ece"]
    written = metrics_files.read_csv(root / paths.CALIBRATION)
    expected = calibration.csv_rows(raw_bins, handin_bins)
    assert len(written) == len(expected) == calibration.BINS
    for row, want in zip(written, expected, strict=True):
        assert row == pytest.approx(want, abs=2e-6)


def test_raw_model_and_handin_differ_as_they_should(project):
    """Label smoothing 0.1 leaves the raw model's true-class probability far below 1: its expected
    graded score is several points under its argmax accuracy, and a seeded run of the course's
    literal loop on the first LOOP_IMAGES agrees with that expectation (within 4 sd) and not with
    the argmax (more than 4 sd away); the hand-in has the same argmax on every image and an
    expected score within half a point of it. Catches a grade or a loop that takes the argmax
    (both would score the argmax accuracy), a hand-in whose sharpening does not reach the file,
    or a sharpening that changes predictions."""
    root, test = project
    raw, handed_in = course.load_checked(root / paths.MODEL), course.load_checked(root / HANDIN)
    raw_score, handin_score = (course.score(f.net, test, []) for f in (raw, handed_in))
    assert raw_score.argmax > 0.85, "the fixture model should have learnt"
    assert raw_score.graded < raw_score.argmax - 0.03, raw_score
    assert abs(handin_score.graded - handin_score.argmax) < 0.005, handin_score
    assert torch.equal(course.probabilities(raw.net, test.images).argmax(1),
                       course.probabilities(handed_in.net, test.images).argmax(1))
    run = course.score(raw.net, test.take(torch.arange(LOOP_IMAGES)), [0])
    assert run.argmax - run.graded > 4 * run.graded_sd, f"the case cannot tell the two: {run}"
    assert abs(run.sampled[0] - run.graded) <= 4 * run.graded_sd, run


def test_sampled_runs_are_reproducible_by_seed(project, monkeypatch, capsys, tmp_path):
    """The course's loop seeds the global RNG itself: the same seed gives the same score whatever
    ran before, different seeds give different draws; the command prints exactly those runs (on a
    project whose test set is SEED_IMAGES of the same digits). Catches a loop that does not seed
    (scores change from call to call), seeds once for all runs (every seed after the first
    depends on what ran before), or labels runs with the wrong seed."""
    root, test = project
    net = course.load_checked(root / paths.MODEL).net
    few = test.take(torch.arange(SEED_IMAGES))
    first = [course_grade(net, few.images, few.labels, seed) for seed in (0, 1, 2, 3)]
    torch.rand(1000)  # move the global RNG on
    again = [course_grade(net, few.images, few.labels, seed) for seed in (3, 2, 1, 0)]
    assert first == again[::-1]
    assert len(set(first)) > 1, first
    small = mark_project(tmp_path / "small")
    save_digits(few, small / paths.prepared("test"))
    capsys.readouterr()
    grade(monkeypatch, small, root / paths.MODEL, "--runs", "2")
    shown = parse_sampled(capsys.readouterr().out.splitlines()[2])
    assert list(shown) == [0, 1]
    assert shown == {0: round(first[0], 4), 1: round(first[1], 4)}


def test_starter_style_and_ddp_files_are_graded(project, monkeypatch, capsys, tmp_path):
    """A state_dict saved the starter code's way (torch.save(net.state_dict(), path) from the course's
    class) and one saved from a DistributedDataParallel model (`module.` before every key) are
    graded with the same scores as the file they came from; the DDP one with a note that the
    course's own loader would refuse it. Catches a prefix that is not stripped (refused as other
    layers), stripped silently, or stripped from only some keys."""
    root, _ = project
    net = CourseConvNet()
    net.load_state_dict(torch.load(root / HANDIN, weights_only=True))
    torch.save(net.state_dict(), tmp_path / "starter.pth")  # the starter code's own call, by path
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "ddp.pth")
    capsys.readouterr()
    grade(monkeypatch, root, HANDIN, tmp_path / "starter.pth", tmp_path / "ddp.pth", "--runs", "0")
    lines = capsys.readouterr().out.splitlines()
    scores = [parse(line) for line in lines if ": argmax " in line]
    assert len(scores) == 3 and scores[0] == scores[1] == scores[2]
    notes = [line for line in lines if "note:" in line]
    assert len(notes) == 1 and notes[0].startswith(f"{tmp_path / 'ddp.pth'}: note: ")
    assert "the course's strict load_state_dict refuses it" in notes[0]


class RunsCode:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def write_plain_pickle(path: Path) -> None:
    with open(path, "wb") as file:
        pickle.dump(MyConvNet().state_dict(), file)


def bad_files(folder):
    """name -> (what to write: bytes, an object for torch.save, a function of the path, or None
    for no file; the line's expected fragment, the fix that fits the cause)."""
    good = MyConvNet().state_dict()
    other = {**good, "cnn.0.weight": torch.zeros(16, 1, 3, 3)}  # a smaller student model's conv
    renamed = {k.replace("cnn.", "features."): v for k, v in good.items()}
    return {
        "missing.pth": (None, "missing.pth is missing: check the path"),
        "folder.pth": (lambda p: p.mkdir(), "folder.pth is a folder, not a weights file: check the path"),
        "tensor.pth": (torch.zeros(3), "tensor.pth holds a Tensor, not a state_dict"),
        "list.pth": ([torch.zeros(3)], "list.pth holds a list, not a state_dict"),
        "other_shape.pth": (other, "layer cnn.0.weight has shape [16, 1, 3, 3], MyConvNet expects "
                                   "[64, 1, 3, 3]"),
        "renamed.pth": (renamed, "renamed.pth lacks weights for layer cnn.0.weight"),
        "extra.pth": ({**good, "head.weight": torch.zeros(1)}, "unexpected layer head.weight"),
        "code.pth": ({"cnn.0.weight": RunsCode()}, "holds a pickled object that could run code (exec)"),
        "text.pth": (b"not a checkpoint\n", "is not a file written by torch.save"),
        "whole.pth": (MyConvNet(), "holds a whole pickled model, refused unread: loading it would "
                                   "run its code (mnist_dvc.model.MyConvNet); you saved the whole "
                                   "model (torch.save(net)), not its state_dict: hand in a "
                                   "state_dict"),
        "checkpoint.pth": ({"model": good, "epoch": 3, "best_acc": 0.99},
                           "is a checkpoint dict with the weights under 'model': save those alone, "
                           "torch.save(checkpoint['model'], path)"),
        "plain.pth": (write_plain_pickle, "is a plain pickle (pickle.dump), not a torch.save file: "
                                          "refused unread (a pickle can run code)"),
    }


@pytest.mark.parametrize("name", list(bad_files(None)))
def test_bad_file_is_one_line_exit_2_and_nothing_graded(project, monkeypatch, capsys, tmp_path, name):
    """Each file the course could not grade is refused with one line naming it, the problem and the
    fix that fits it, exit 2, nothing written, no code run, and no other file graded (all are
    checked first). Catches a traceback (KeyError, UnpicklingError, size mismatch from
    load_state_dict), a pickled object unpickled without weights_only, a refusal that names no
    layer, grading the good file before failing on the bad one; and a fix that misses its cause:
    a folder called "missing", a whole saved model told only that it "could run code", a checkpoint
    dict told it lacks a layer, a plain pickle called corrupt after torch's two-line UserWarning."""
    root, _ = project
    content, fragment = bad_files(tmp_path)[name]
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif callable(content) and not isinstance(content, torch.nn.Module):
        content(path)
    elif content is not None:
        torch.save(content, path)
    before = set(root.rglob("*")) | set(tmp_path.rglob("*"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        grade(monkeypatch, tmp_path, root / HANDIN, path)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: "), captured.err
    assert fragment in captured.err and "Traceback" not in captured.err, captured.err
    assert "torch.save(net.state_dict(), path)" in captured.err or name in ("missing.pth", "folder.pth")
    assert "corrupt" not in captured.err or name == "text.pth", captured.err
    assert captured.out == ""
    assert set(root.rglob("*")) | set(tmp_path.rglob("*")) == before
    assert not (tmp_path / "PWNED").exists() and not (root / "PWNED").exists()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_expected_score_comes_first_then_the_loop_with_progress(project, monkeypatch, capsys):
    """The expected score (a second's work) is printed before the literal loop starts, and the
    loop shows a labelled tqdm bar on a terminal. Catches grade printing nothing until every run
    is done (it looked hung for minutes), and a loop without progress."""
    root, test = project
    printed_before_loop, labels = [], []
    real_loop = course.course_grade

    def loop(net, images, labels_, seed, progress=None):
        printed_before_loop.append(capsys.readouterr().out)
        labels.append(progress)
        return real_loop(net, images[:20], labels_[:20], seed, progress)

    monkeypatch.setattr(course, "course_grade", loop)
    capsys.readouterr()
    grade(monkeypatch, root, HANDIN, "--runs", "2")
    first = printed_before_loop[0].splitlines()
    assert len(first) == 2 and first[1].startswith(f"{HANDIN}: argmax "), first
    assert labels == ["seed 0", "seed 1"]
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    net = course.load_checked(root / HANDIN).net
    real_loop(net, test.images[:30], test.labels[:30], 0, "seed 0")
    shown = terminal.getvalue()  # the bar counts up, then clears itself (leave=False)
    assert "\rseed 0:   0%|" in shown and "/30 [" in shown, shown


def test_console_script_grades_from_a_folder_outside_the_projects_root(project, tmp_path):
    """`mnist-dvc grade FILE` run in a subfolder finds the project above it (its test set) and
    reads FILE where it is typed. Catches a console script that is not installed, commands that
    read data/ relative to the current folder (grade found no test set outside the root), and a
    FILE resolved against the project instead of where the user is."""
    root, test = project
    sub = root / "homework"
    sub.mkdir(exist_ok=True)
    (sub / "mine.pth").write_bytes((root / HANDIN).read_bytes())
    done = subprocess.run([str(Path(sys.executable).parent / "mnist-dvc"), "grade", "mine.pth",
                           "--runs", "0"], cwd=sub, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"grade: {len(test)} test images from {root / paths.prepared('test')}")
    assert lines[1].startswith("mine.pth: argmax ")


def test_test_set_is_the_prepared_one_else_the_raw_files(tmp_path, monkeypatch, mnist_dir):
    """data/prepared/test.pt when the split stage wrote one (what evaluate scores), else the test
    files of $MNIST_LOCAL_DIR. Catches a grade on the raw test set while the project's own
    evaluation uses a limited one (data.test_limit), or no way to grade without running the
    pipeline first."""
    monkeypatch.setenv("MNIST_LOCAL_DIR", str(mnist_dir))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    raw, source = find_mnist.test_set(tmp_path)
    assert len(raw) == 10_000 and source == str(mnist_dir)
    save_digits(Digits(raw.images[:50], raw.labels[:50]), tmp_path / paths.prepared("test"))
    prepared, source = find_mnist.test_set(tmp_path)
    assert source == str(tmp_path / paths.prepared("test"))  # the file itself, wherever grade runs
    assert torch.equal(prepared.images, raw.images[:50]) and torch.equal(prepared.labels, raw.labels[:50])


@pytest.mark.parametrize("module", ["commands.grade", "commands.handin", "commands.predict",
                                    "commands.compare"])
def test_each_command_says_what_its_interrupt_leaves(module, monkeypatch, capsys):
    """Ctrl-C in a user command prints its own `interrupted: ...` line and exits 130; none claims a
    checkpoint or `dvc repro` (only the train stage checkpoints). Catches a command started with
    run_stage, whose message promised a resume that never happens."""
    def interrupt(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", interrupt)
    monkeypatch.setattr(sys, "argv", [module])
    monkeypatch.delitem(sys.modules, module, raising=False)  # run_module runs it afresh as __main__
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module(module, run_name="__main__")
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted: ") and err.count("\n") == 1, err
    assert "checkpoint" not in err and "dvc repro" not in err, err
    assert err == f"interrupted: {importlib.import_module(module).INTERRUPTED}\n"


def test_stages_folder_holds_only_dvc_stages():
    """stages/ is the DVC pipeline and nothing else: each script there is a stage in dvc.yaml.
    Catches a user command added to (or left in) stages/, where it looks like part of `dvc repro`."""
    root = Path(__file__).resolve().parents[1]
    cmds = {s["cmd"].split()[2] for s in yaml.safe_load((root / "dvc.yaml").read_text())["stages"].values()}
    scripts = {f"stages.{p.stem}" for p in (root / "stages").glob("*.py") if p.stem != "__init__"}
    assert scripts == cmds
    assert all((root / "commands" / f"{name}.py").is_file() for name in ("handin", "predict", "compare",
                                                                         "grade"))
    assert os.path.getsize(root / "commands/__init__.py") == 0
