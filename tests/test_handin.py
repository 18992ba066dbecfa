"""The hw7 hand-in, graded the course's way: the course's own class and sampling loop score it."""

import math
import sys

import pytest
import torch
from repo_helpers import mark_project
from small_model import small_project

from commands import handin as handin_command
from mnist_dvc import course, handin, paths
from mnist_dvc.cli import run_command
from mnist_dvc.course import CourseConvNet, course_inputs, load_course_net
from mnist_dvc.errors import MnistError
from mnist_dvc.inference import accuracy, logits_of
from mnist_dvc.model import MyConvNet, load_model

LOOP_IMAGES = 500  # test images in the one run of the course's literal loop (20 ms each)


@pytest.fixture(scope="module")
def project(tmp_path_factory, small_model):
    """A project folder holding what the train and split stages leave: the session's small model
    (one epoch, the default label smoothing 0.1) as models/model.pt, its 1,000 valid and 2,000
    test digits as data/prepared/{valid,test}.pt."""
    root = small_project(tmp_path_factory.mktemp("project"), small_model, small_model.valid,
                         small_model.test)
    return root, small_model.test


def run_handin(monkeypatch, root, *args):
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "argv", ["commands.handin", *args])
    run_command(handin_command.main, handin_command.INTERRUPTED)


@pytest.mark.slow
def test_course_grader_scores_the_handin_near_argmax(project, monkeypatch, capsys):
    """The course's class, loading the hand-in strictly, expects a graded score within 0.3 points
    of the argmax accuracy on the 2,000 test images, while the same model unsharpened expects
    clearly less; and a seeded run of the course's literal loop on the first LOOP_IMAGES lands
    within 4 standard deviations of its expectation there. Catches a hand-in without the
    sharpening (or a factor that never reaches the file), a file the course's class cannot load
    strictly, sharpening that changes predictions, and a loop that does not sample from the
    file's softmax."""
    root, test = project
    run_handin(monkeypatch, root, "21000000", "zhangsan")
    handed_in = root / "hw7_21000000_zhangsan.pth"
    argmax = (logits_of(load_model(root / paths.MODEL), test).argmax(1) == test.labels)
    argmax = argmax.double().mean().item()
    assert argmax > 0.9, "the fixture model should have learnt"
    net = load_course_net(handed_in)
    assert abs(course.score(net, test, []).graded - argmax) <= 0.003
    # label smoothing 0.1 puts ~0.8 on the true class of this weak model
    assert course.score(load_course_net(root / paths.MODEL), test, []).graded < argmax - 0.03
    # The literal loop: one seeded run on the first LOOP_IMAGES (its sd is about 0.0035 there).
    run = course.score(net, test.take(torch.arange(LOOP_IMAGES)), [0])
    assert abs(run.sampled[0] - run.graded) <= 4 * run.graded_sd, run
    out = capsys.readouterr().out
    assert "sharpened x" in out and "wrote hw7_21000000_zhangsan.pth" in out


@pytest.mark.slow
def test_handin_keeps_every_prediction_and_changes_only_the_last_layer(project, monkeypatch):
    """The course's class gives the hand-in the same argmax on every test image as models/model.pt;
    every tensor but fc.4's is bit-identical. Catches sharpening that scales another layer (which a
    BatchNorm-free argmax might survive but the grader would not) or reorders keys' contents."""
    root, test = project
    run_handin(monkeypatch, root, "21000000", "zhangsan")
    original = torch.load(root / paths.MODEL, weights_only=True)
    handed_in = torch.load(root / "hw7_21000000_zhangsan.pth", weights_only=True)
    assert list(handed_in) == list(original)
    changed = {k for k in original if not torch.equal(original[k], handed_in[k])}
    assert changed == {"fc.4.weight", "fc.4.bias"}
    factor = (handed_in["fc.4.bias"] / original["fc.4.bias"]).mean().item()
    assert factor > 1
    nets = []
    for state in (original, handed_in):
        net = CourseConvNet()
        net.load_state_dict(state)
        nets.append(net.eval())
    x = course_inputs(test.images)
    with torch.no_grad():
        assert torch.equal(nets[0](x).argmax(1), nets[1](x).argmax(1))


def test_same_model_gives_the_same_bytes(small_model, monkeypatch, tmp_path):
    """Bug caught: a hand-in whose bytes change from run to run (a time stamp, an unordered dict,
    a factor that depends on more than the model and valid). 300 valid and test digits: enough
    to choose a factor, and a tenth of the module's project to score."""
    root = small_project(tmp_path / "project", small_model, small_model.valid.take(torch.arange(300)),
                         small_model.test.take(torch.arange(300)))
    run_handin(monkeypatch, root, "21000000", "zhangsan")
    first = (root / "hw7_21000000_zhangsan.pth").read_bytes()
    (tmp_path / "out").mkdir()
    run_handin(monkeypatch, root, "21000000", "zhangsan", "--out", str(tmp_path / "out"))
    assert (tmp_path / "out/hw7_21000000_zhangsan.pth").read_bytes() == first


@pytest.mark.parametrize("args, problem", [
    (["2100a000", "zhangsan"], "student id '2100a000' must be digits only"),
    (["21000000", "zhāngsān"], "must be ASCII letters only"),
    (["21000000", "zhang san"], "must be ASCII letters only"),
    (["21000000", "zhangsan", "--out", "no/such/folder"], "output folder no/such/folder does not exist"),
    (["21000000", "zhangsan", "--model", "models/none.pt"], "models/none.pt is missing: check the path"),
])
def test_bad_input_is_one_line_and_writes_nothing(project, monkeypatch, capsys, args, problem):
    root, _ = project
    before = set(root.rglob("*"))
    with pytest.raises(SystemExit) as exit_info:
        run_handin(monkeypatch, root, *args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and problem in err, err
    assert set(root.rglob("*")) == before


def test_missing_model_fix_fits_the_cause(monkeypatch, capsys, tmp_path):
    """No --model and no trained model: run the train stage (naming the project); a --model path
    that is not there: check the path. Catches the one fix for both, which told a student with a
    typo in --model to retrain (dvc repro train) and one without a model to check a path."""
    project = mark_project(tmp_path / "project")
    with pytest.raises(SystemExit):
        run_handin(monkeypatch, project, "21000000", "zhangsan")
    err = capsys.readouterr().err
    assert f"{paths.MODEL} is missing: run the train stage first (dvc repro train in {project}" in err, err
    with pytest.raises(SystemExit):
        run_handin(monkeypatch, project, "21000000", "zhangsan", "--model", "modles/model.pt")
    err = capsys.readouterr().err
    assert err == "error: modles/model.pt is missing: check the path\n", err


def test_graded_accuracy_by_hand():
    """Two images, softmax [0.75, 0.25]: right with 0.75 and 0.25, so the grader expects 0.5 with
    standard deviation sqrt(0.75 * 0.25 * 2) / 2."""
    logits = torch.tensor([[math.log(3), 0.0], [math.log(3), 0.0]])
    labels = torch.tensor([0, 1])
    assert handin.graded_accuracy(logits, labels) == pytest.approx(0.5)
    assert handin.graded_accuracy_sd(logits, labels) == pytest.approx(math.sqrt(0.375) / 2)


def test_graded_accuracy_by_hand_where_every_wrong_formula_differs():
    """Three images, softmax rows [0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.25, 0.25], true labels
    0, 2, 1: the grader expects (0.7 + 0.3 + 0.25) / 3 with sd sqrt(0.21 + 0.21 + 0.1875) / 3. No
    symmetry: softmax over the images (dim 0) gives 0.4126, the top probability 0.6, the argmax
    accuracy 1/3, the probability of label 0 for every image 0.433, each a different number.
    Bugs caught: each of those formulas, and a variance divided by n instead of n^2."""
    probabilities = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.25, 0.25]],
                                 dtype=torch.float64)
    logits, labels = probabilities.log(), torch.tensor([0, 2, 1])
    assert handin.graded_accuracy(logits, labels) == pytest.approx(1.25 / 3, abs=1e-12)
    assert handin.graded_accuracy_sd(logits, labels) == pytest.approx(math.sqrt(0.6075) / 3,
                                                                       abs=1e-12)
    wrong_axis = logits.softmax(dim=0).gather(1, labels[:, None]).mean().item()
    assert abs(wrong_axis - 1.25 / 3) > 1e-3  # the example tells the axes apart


def test_an_empty_set_expects_a_score_of_0_with_sd_0():
    """No images: the grader expects 0 with sd 0, as accuracy() gives 0 for no rows (the mean of
    nothing would be NaN). Bugs caught (mutation testing): the empty case returning 1 for the
    score or for its sd."""
    nothing, no_labels = torch.empty(0, 10), torch.empty(0, dtype=torch.long)
    assert handin.expected_score(torch.empty(0, dtype=torch.float64)) == (0.0, 0.0)
    assert handin.graded_accuracy(nothing, no_labels) == 0.0
    assert handin.graded_accuracy_sd(nothing, no_labels) == 0.0


def test_factor_is_the_smallest_within_tolerance_on_valid():
    """Every row puts e^a = 81 on the right class and 1 on nine others: p = 81/90 = 0.9 at T=1,
    729/738 = 0.9878 at 1.5, 6561/6570 = 0.99863 at 2 (short of 1 - 0.0005), 0.99998 at 3."""
    logits = torch.zeros(4, 10)
    logits[:, 0] = math.log(81)
    assert handin.choose_factor(logits, torch.zeros(4, dtype=torch.long)) == 3.0
    # A tie everywhere: no factor helps, so the smallest of the best (1).
    assert handin.choose_factor(torch.zeros(4, 10), torch.zeros(4, dtype=torch.long)) == 1.0


def test_grade_reports_each_split_raw_and_sharpened():
    """handin.grade, entry by entry: the factor chosen on valid only (3, as above), and for each
    split the argmax accuracy and the graded score with its sd, of the raw logits and of the
    logits times the factor. The test split has a wrong image and an unsure right one, so that
    every entry differs from its neighbours'. Bugs caught (mutation testing): the sd after
    sharpening computed from logits / factor (only the hand-in command's printed table shows that
    sd, and no test read it), and any entry taken from the other split or the unsharpened logits."""
    valid_logits = torch.zeros(4, 10)
    valid_logits[:, 0] = math.log(81)
    valid_labels = torch.zeros(4, dtype=torch.long)
    test_logits = torch.zeros(3, 10)
    test_logits[0, 1] = 2.0  # right, unsure: p = e^2 / (e^2 + 9) = 0.45
    test_logits[1, 2] = 4.0  # right, sure
    test_logits[2, 3] = 3.0  # wrong: label 4
    test_labels = torch.tensor([1, 2, 4])
    result = handin.grade((valid_logits, valid_labels), (test_logits, test_labels))
    assert result["factor"] == 3.0
    for split, (logits, labels) in (("valid", (valid_logits, valid_labels)),
                                     ("test", (test_logits, test_labels))):
        assert result[split] == {
            "argmax": accuracy(logits, labels),
            "graded": handin.graded_accuracy(logits, labels),
            "graded_sd": handin.graded_accuracy_sd(logits, labels),
            "handin_graded": handin.graded_accuracy(logits * 3, labels),
            "handin_graded_sd": handin.graded_accuracy_sd(logits * 3, labels),
        }, split
    test = result["test"]
    assert test["argmax"] == pytest.approx(2 / 3)
    # the case tells the entries apart: sharpening moves both numbers, and / 3 moves them otherwise
    assert len({test["graded"], test["handin_graded"], test["argmax"]}) == 3
    assert len({test["graded_sd"], test["handin_graded_sd"],
                handin.graded_accuracy_sd(test_logits / 3, test_labels)}) == 3


def test_sharpened_scales_the_last_layer_only():
    state = MyConvNet().state_dict()
    sharp = handin.sharpened(state, 4.0)
    assert torch.equal(sharp["fc.4.weight"], state["fc.4.weight"] * 4)
    assert torch.equal(sharp["fc.4.bias"], state["fc.4.bias"] * 4)
    assert all(torch.equal(sharp[k], state[k]) for k in state if not k.startswith("fc.4."))


def test_the_handin_holds_plain_row_major_tensors():
    """Bug caught: the hand-in keeping the model's channels_last strides (conv1's weight passes
    for contiguous, so .contiguous() keeps them): a file unlike the one the course was given
    before, for the same weights."""
    sharp = handin.sharpened(MyConvNet().state_dict(), 4.0)
    assert {k: v.stride() for k, v in sharp.items()} == {
        k: torch.empty(v.shape).stride() for k, v in sharp.items()}


@pytest.mark.parametrize("student_id, name", [("", "zhangsan"), ("123", ""), ("12 3", "li"),
                                              ("１２３", "li"), ("123", "li-si"), ("123", "li.pth")])
def test_file_name_refuses_what_the_course_cannot_take(student_id, name):
    with pytest.raises(MnistError):
        handin.file_name(student_id, name)
    assert handin.file_name("21000000", "ZhangSan") == "hw7_21000000_ZhangSan.pth"


def test_each_refusal_of_a_name_or_folder_says_how_to_fix_it(tmp_path):
    """The hand-in's three refusals, word for word: each names the problem, then the fix with an
    example. Bugs caught (mutation testing): the fix's half of a message garbled or dropped (the
    command's tests above check the problem's half only)."""
    with pytest.raises(MnistError) as error:
        handin.file_name("2100a000", "zhangsan")
    assert str(error.value) == ("student id '2100a000' must be digits only: pass your student "
                                "number, e.g. mnist-dvc handin 21000000 zhangsan")
    with pytest.raises(MnistError) as error:
        handin.file_name("21000000", "zhang san")
    assert str(error.value) == ("name 'zhang san' must be ASCII letters only: write it in pinyin "
                                "without spaces, tones or accents, e.g. zhangsan")
    missing = tmp_path / "none"
    with pytest.raises(MnistError) as error:
        handin.output_path(missing, "21000000", "zhangsan")
    assert str(error.value) == (f"output folder {missing} does not exist: create it (mkdir -p "
                                f"{missing}) or pass an existing one with --out")
    assert handin.output_path(tmp_path, "21000000", "zhangsan") == tmp_path / "hw7_21000000_zhangsan.pth"
