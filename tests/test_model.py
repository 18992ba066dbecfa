import pytest
import torch

from mnist_dvc.errors import MnistError
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


def test_state_dict_round_trip(tmp_path):
    model = MyConvNet().eval()
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    loaded = load_model(path)
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model(x), loaded(x))
    plain = MyConvNet()
    plain.load_state_dict(torch.load(path, weights_only=True))


class RunsCode:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_crafted_pickle_is_refused_without_running_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"cnn.0.weight": RunsCode()}, path)  # a real checkpoint file, booby-trapped
    with pytest.raises(MnistError, match="is not a plain state_dict and was refused"):
        load_model(path)
    assert not (tmp_path / "PWNED").exists()


def test_wrong_shapes_name_the_layer(tmp_path):
    state = MyConvNet().state_dict()
    state["fc.2.weight"] = torch.zeros(50, 784)
    path = tmp_path / "model.pt"
    torch.save(state, path)
    with pytest.raises(MnistError, match=r"layer fc.2.weight has shape \[50, 784\], MyConvNet expects \[98, 784\]"):
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
