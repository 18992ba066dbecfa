import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnist_dvc.course import CourseConvNet, course_inputs, load_course_net
from mnist_dvc.errors import MnistError
from mnist_dvc.inference import evaluate
from mnist_dvc.model import MyConvNet, load_model


def test_forward_returns_logits_of_shape_n_by_10():
    model = MyConvNet().eval()
    logits = model(torch.rand(3, 1, 28, 28))
    assert logits.shape == (3, 10)
    # Logits, not probabilities: rows do not sum to one.
    assert not torch.allclose(logits.sum(dim=1), torch.ones(3))


def test_layer_shapes_match_the_study():
    shapes = {k: tuple(v.shape) for k, v in MyConvNet().state_dict().items() if k.endswith("weight")}
    assert shapes == {
        "cnn.0.weight": (64, 1, 3, 3), "cnn.1.weight": (64,),
        "cnn.4.weight": (128, 64, 3, 3), "cnn.5.weight": (128,),
        "fc.0.weight": (784, 6272), "fc.2.weight": (98, 784),
        "fc.4.weight": (10, 98),
    }


def test_a_loaded_model_pools_channels_last(tmp_path):
    """Bug caught: a model loaded from a file (evaluate, handin, grade, predict, serve) running
    NCHW up to its second convolution, as MyConvNet() did with torch's default weight layout: its
    evaluation was 1.5-2x slower than in training
    (bench/measured/2026-12-06_xeon_channels_last_eval_ab.txt)."""
    path = tmp_path / "model.pt"
    plain = {k: v.clone(memory_format=torch.contiguous_format) for k, v in MyConvNet().state_dict().items()}
    torch.save(plain, path)  # as older code and other tools write it: torch's default layout
    model = load_model(path)
    pooled = []
    for pool in (model.cnn[2], model.cnn[6]):
        pool.register_forward_hook(lambda _, inputs, __: pooled.append(inputs[0]))
    model(torch.rand(4, 1, 28, 28).contiguous(memory_format=torch.channels_last))
    assert [x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
            for x in pooled] == [True, True]


def test_state_dict_round_trip(tmp_path):
    model = MyConvNet().eval()
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    loaded = load_model(path)
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model(x), loaded(x))
    plain = MyConvNet()
    plain.load_state_dict(torch.load(path, weights_only=True))


def test_wrong_shapes_name_the_layer(tmp_path):
    state = MyConvNet().state_dict()
    state["fc.2.weight"] = torch.zeros(50, 784)
    path = tmp_path / "model.pt"
    torch.save(state, path)
    with pytest.raises(MnistError,
                       match=r"layer fc.2.weight has shape \[50, 784\], MyConvNet expects \[98, 784\]"):
        load_model(path)


def test_missing_and_extra_layers(tmp_path):
    state = MyConvNet().state_dict()
    del state["cnn.1.running_mean"]
    torch.save(state, tmp_path / "a.pt")
    with pytest.raises(MnistError, match="lacks weights for layer cnn.1.running_mean"):
        load_model(tmp_path / "a.pt")
    state = {**MyConvNet().state_dict(), "head.weight": torch.zeros(1)}
    torch.save(state, tmp_path / "b.pt")
    with pytest.raises(MnistError, match="unexpected layer head.weight"):
        load_model(tmp_path / "b.pt")


def test_missing_model_file(tmp_path):
    with pytest.raises(MnistError, match="is missing: run the train stage"):
        load_model(tmp_path / "none.pt")


# --- the starter code's own class loads the project's weights -------------------------------------

class StarterConvNet(nn.Module):
    """The starter code's class as it was written: blocks `cnn` and `fc`, no input normalisation,
    input reshaped to (-1, 1, 28, 28), softmax output. Kept here verbatim in layout, not imported from
    the project, so a renamed layer or a changed forward in MyConvNet shows up as a failure."""

    def __init__(self):
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(1, 64, kernel_size=3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, kernel_size=3, padding=1), nn.BatchNorm2d(128), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.fc = nn.Sequential(
            nn.Linear(128 * 7 * 7, 784), nn.ReLU(), nn.Linear(784, 98), nn.ReLU(), nn.Linear(98, 10),
        )

    def forward(self, x):
        x = x.reshape(-1, 1, 28, 28)
        x = self.cnn(x)
        x = x.view(x.size(0), -1)
        return F.softmax(self.fc(x), dim=1)


@pytest.fixture(scope="module")
def trained_model(small_model):
    """models/model.pt as the train stage writes it (best-on-valid state_dict, atomic torch_save):
    the session's small model, one epoch on 6,000 real digits; with 300 real test digits."""
    return small_model.weights, small_model.test.take(torch.arange(300))


def test_starter_class_loads_the_model_and_its_one_image_loop_matches_evaluate(trained_model):
    """The starter code's class loads models/model.pt with a plain load_state_dict (strict), and its
    evaluation, one (1, 28, 28) float [0, 1] image at a time with argmax, gets the same test
    accuracy and the same predictions as inference.evaluate. Catches layer names that differ from
    the starter code's (features/classifier), a normalisation or scaling inside MyConvNet that its
    class lacks, or evaluate scoring images prepared differently from the starter code's float
    tensors."""
    path, test = trained_model
    starter_net = StarterConvNet()
    starter_net.load_state_dict(torch.load(path, weights_only=True))  # its call (torch >= 2.6 default)
    starter_net.eval()
    test_data = test.images.float().div(255).unsqueeze(1)  # the starter code's (N, 1, 28, 28) in [0, 1]
    predicted = []
    with torch.no_grad():
        for i in range(len(test_data)):
            output = starter_net(test_data[i])  # (1, 28, 28)
            predicted.append(int(output.argmax(dim=1)))
    predicted = torch.tensor(predicted)
    starter_accuracy = (predicted == test.labels).sum().item() / len(test)

    _, accuracy, project_predicted = evaluate(load_model(path), test)
    assert starter_accuracy == accuracy
    assert torch.equal(predicted, project_predicted)
    assert 0.5 < accuracy < 1  # a trained model, not a constant guess


def test_starter_class_output_is_the_softmax_of_myconvnet_logits(trained_model):
    """Same weights, same float [0, 1] input: the starter code's output is softmax(MyConvNet logits).
    Catches any transform MyConvNet.forward adds or drops relative to the starter code's forward."""
    path, test = trained_model
    starter_net, project = StarterConvNet(), load_model(path)
    starter_net.load_state_dict(torch.load(path, weights_only=True))
    starter_net.eval()
    x = test.images[:16].float().div(255).unsqueeze(1)
    with torch.no_grad():
        assert torch.allclose(starter_net(x), F.softmax(project(x), dim=1), atol=1e-6)


def test_myconvnet_gives_the_same_logits_for_every_input_shape():
    """(28, 28) and (1, 28, 28) are one image, (N, 28, 28) and (N, 1, 28, 28) are N images, all
    with the same logits. Catches a 3D input taken as one 3-channel image or rejected (the starter code's
    loop fed (1, 28, 28) and the project's model used to raise "expected 4D input")."""
    model = MyConvNet().eval()
    batch = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model(batch)
        assert reference.shape == (5, 10)
        assert torch.allclose(model(batch[:, 0]), reference, atol=1e-5)  # (N, 28, 28)
        for i in range(len(batch)):
            for one in (batch[i], batch[i, 0]):  # (1, 28, 28) and (28, 28)
                logits = model(one)
                assert logits.shape == (1, 10)
                assert torch.allclose(logits[0], reference[i], atol=1e-5)


# --- the course's class (mnist_dvc.course) loads the project's weights -----------------------------

def test_course_class_keeps_the_course_layout():
    """The course's class is the course's literal layout: conv, BN, ReLU, max-pool per block (ReLU
    before the pool, unlike MyConvNet). Catches the course's class "optimised" like the project's
    model: then nothing would check that the two orders agree on real weights."""
    assert [type(m).__name__ for m in CourseConvNet().cnn] == [
        "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"] * 2
    assert CourseConvNet().state_dict().keys() == MyConvNet().state_dict().keys()


def test_course_class_loaded_the_course_way_predicts_as_myconvnet(trained_model):
    """The course's class, loaded the course's way from models/model.pt, gives softmax(MyConvNet
    logits) and the same prediction on every test image, batched and one (1, 28, 28) image at a
    time. MyConvNet pools before its ReLU, the course after: equal only because ReLU is monotone
    and BN comes before both. Catches a non-monotone activation in MyConvNet (GELU, SiLU), the
    pool moved before the BatchNorm, or any other change that makes the orders differ."""
    path, test = trained_model
    course, project = load_course_net(path), load_model(path)
    x = course_inputs(test.images)
    with torch.no_grad():
        probabilities, logits = course(x), project(x)
        assert torch.allclose(probabilities, F.softmax(logits, dim=1), atol=1e-6)
        assert torch.equal(probabilities.argmax(1), logits.argmax(1))
        one_at_a_time = torch.stack([course(image)[0] for image in x[:20]])
    assert torch.allclose(one_at_a_time, probabilities[:20], atol=1e-6)
