import pytest
import torch

from mnist_dvc.digits import Digits, load_digits, save_digits
from mnist_dvc.errors import MnistError


def test_save_and_load_round_trip(tmp_path):
    original = Digits(torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8), torch.tensor([3, 1, 4, 1]))
    save_digits(original, tmp_path / "d.pt")
    loaded = load_digits(tmp_path / "d.pt")
    assert torch.equal(loaded.images, original.images) and torch.equal(loaded.labels, original.labels)


def test_load_digits_refuses_other_tensors(tmp_path):
    # Files torch.save did not write, and pickled code: tests/test_torch_files.py.
    path = tmp_path / "x.pt"
    torch.save({"images": torch.zeros(3, 28, 28), "labels": torch.zeros(3)}, path)
    with pytest.raises(MnistError, match="does not hold uint8 images and int64 labels"):
        load_digits(path)


def test_digits_take():
    digits = Digits(torch.zeros(5, 28, 28, dtype=torch.uint8), torch.arange(5))
    assert digits.take(torch.tensor([1, 3])).labels.tolist() == [1, 3]
