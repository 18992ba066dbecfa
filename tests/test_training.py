import math

import pytest
import torch

from mnist_dvc import augment, checkpoint, device, inference, optimizers, training
from mnist_dvc.data import Digits
from mnist_dvc.errors import MnistError
from mnist_dvc.model import MyConvNet, as_input

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny(mnist_train, mnist_test):
    """600 train, 300 valid, 300 test real digits."""
    return (mnist_train.take(torch.arange(600)), mnist_train.take(torch.arange(600, 900)),
            mnist_test.take(torch.arange(300)))


def quick(make_params, **overrides):
    settings = {"train.epochs": 2, "train.batch_size": 64, "train.precision": "fp32",
                "train.augment": False, "train.label_smoothing": 0.0, **overrides}
    return make_params(**settings)


def test_lr_schedules(make_params):
    spe = 10
    constant = make_params(scheduler="constant")
    assert {optimizers.lr_factor(constant, s, spe) for s in range(50)} == {1.0}

    steplr = make_params(scheduler="steplr", **{"steplr.step_size": 2, "steplr.gamma": 0.5})
    assert [optimizers.lr_factor(steplr, e * spe, spe) for e in range(6)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    assert optimizers.lr_factor(steplr, 2 * spe - 1, spe) == 1  # changes at the epoch boundary only

    cosine = make_params(scheduler="warmup", **{"warmup.epochs": 2, "warmup.decay": "cosine",
                                                "train.epochs": 6})
    factors = [optimizers.lr_factor(cosine, s, spe) for s in range(6 * spe)]
    assert factors[0] == pytest.approx(1 / 20) and factors[19] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(factors[:20], factors[1:20]))  # linear rise
    assert all(a >= b for a, b in zip(factors[20:], factors[21:]))  # then decay
    assert factors[-1] < 0.01

    exponential = make_params(scheduler="warmup", **{"warmup.epochs": 1, "warmup.decay": "exponential",
                                                     "warmup.gamma": 0.5})
    assert optimizers.lr_factor(exponential, 3 * spe, spe) == pytest.approx(0.25)


def test_each_optimizer(make_params):
    model = MyConvNet()
    assert isinstance(optimizers.make_optimizer(make_params(optimizer="adam"), model), torch.optim.Adam)
    assert isinstance(optimizers.make_optimizer(make_params(optimizer="nadam"), model), torch.optim.NAdam)
    sgd = optimizers.make_optimizer(make_params(optimizer="sgdm", **{"train.momentum": 0.8}), model)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.8
    assert sgd.param_groups[0]["weight_decay"] == 1e-5


def test_augment_keeps_shape_and_is_seeded():
    x = torch.rand(8, 1, 28, 28)
    a = augment.random_affine(x, torch.Generator().manual_seed(1))
    b = augment.random_affine(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.allclose(a, x)
    assert a.min() >= 0 and a.max() <= 1 + 1e-6


def test_predict_uses_argmax_and_mean_loss(tiny):
    model = MyConvNet().eval()
    loss, accuracy, predicted = inference.evaluate(model, tiny[2], batch_size=128)
    logits = model(as_input(tiny[2].images))
    assert torch.equal(predicted, logits.argmax(1))
    assert accuracy == pytest.approx((predicted == tiny[2].labels).float().mean().item())
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, tiny[2].labels).item(), rel=1e-4)


def test_tiny_training_run_learns(make_params, tiny):
    result = training.fit(quick(make_params), *tiny, CPU, progress=False)
    assert result.epoch == 2 and len(result.history) == 2
    assert result.best_valid_acc > 0.8
    assert set(result.history[0]) == {"epoch", "lr", "train_loss", "train_acc", "valid_loss",
                                      "valid_acc", "test_loss", "test_acc"}
    model = MyConvNet()
    model.load_state_dict(result.best_state)
    _, valid_acc, _ = inference.evaluate(model, tiny[1])
    assert valid_acc == result.best_valid_acc


def test_augmented_bf16_run(make_params, tiny):
    params = quick(make_params, scheduler="constant",
                   **{"train.augment": True, "train.precision": "bf16", "train.epochs": 1})
    result = training.fit(params, *tiny, CPU, progress=False)
    assert math.isfinite(result.history[0]["train_loss"]) and result.best_valid_acc > 0.2


def test_same_seed_same_result(make_params, tiny):
    params = quick(make_params, **{"train.epochs": 1})
    a = training.fit(params, *tiny, CPU, progress=False)
    b = training.fit(params, *tiny, CPU, progress=False)
    assert a.history == b.history
    assert all(torch.equal(a.best_state[k], b.best_state[k]) for k in a.best_state)


def test_early_stopping_after_patience_stale_epochs(make_params, mnist_train):
    train, valid = mnist_train.take(torch.arange(100)), mnist_train.take(torch.arange(100, 200))
    params = quick(make_params, scheduler="constant", **{"train.epochs": 40, "train.patience": 2,
                                                          "train.batch_size": 50})
    result = training.fit(params, train, valid, valid, CPU, progress=False)
    assert result.epoch < 40
    assert result.epoch - result.best_epoch == 2
    accs = [row["valid_acc"] for row in result.history]
    assert result.best_valid_acc == max(accs)


@pytest.mark.parametrize("n, batch_size, expected", [
    (10, 4, [0, 4, 8]), (9, 4, [0, 4]), (8, 4, [0, 4]), (5, 5, [0]), (6, 5, [0])])
def test_batch_starts_drop_only_a_last_batch_of_one_image(n, batch_size, expected):
    assert list(training.batch_starts(n, batch_size)) == expected


def test_one_image_last_batch_is_skipped_and_schedule_counts_the_steps_taken(make_params, tiny):
    # 601 images at batch 50: 12 full batches and a last one of a single image, which is dropped.
    train = tiny[0]
    train = Digits(torch.cat([train.images, train.images[:1]]), torch.cat([train.labels, train.labels[:1]]))
    params = quick(make_params, **{"train.batch_size": 50, "scheduler": "steplr",
                                   "steplr.step_size": 1, "steplr.gamma": 0.5})
    history = training.fit(params, train, tiny[1], tiny[2], CPU, progress=False).history
    # Epoch 2 starts at half the lr only if an epoch was counted as the 12 steps actually taken.
    assert [record["lr"] for record in history] == pytest.approx([params.train.lr, params.train.lr / 2])


def test_batch_larger_than_train_set(make_params, tiny):
    with pytest.raises(MnistError, match=r"train.batch_size = 1000 is larger than the training set \(600"):
        training.fit(quick(make_params, **{"train.batch_size": 1000}), *tiny, CPU, progress=False)


def test_diverging_loss_stops_and_names_epoch(make_params, tiny, tmp_path):
    params = quick(make_params, optimizer="sgdm", scheduler="constant", **{"train.lr": 1e12})
    with pytest.raises(MnistError, match=r"training loss became (nan|inf) in epoch 1: lower train.lr"):
        training.fit(params, *tiny, CPU, checkpoint=tmp_path / "ckpt.pt", progress=False)
    assert not (tmp_path / "ckpt.pt").exists()


class Stop(Exception):
    pass


def test_resume_after_interrupt_equals_uninterrupted_run(make_params, tiny, tmp_path):
    params = quick(make_params, **{"train.epochs": 3})
    full = training.fit(params, *tiny, CPU, progress=False)

    checkpoint = tmp_path / "ckpt.pt"

    def stop_after_two(record):
        if record["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        training.fit(params, *tiny, CPU, checkpoint=checkpoint, fingerprint="a",
                     progress=False, on_epoch=stop_after_two)
    epochs_seen = []
    resumed = training.fit(params, *tiny, CPU, checkpoint=checkpoint, fingerprint="a",
                           progress=False, on_epoch=lambda r: epochs_seen.append(r["epoch"]))
    assert epochs_seen == [3]
    assert resumed.history == full.history
    assert all(torch.equal(resumed.best_state[k], full.best_state[k]) for k in full.best_state)


def test_checkpoint_from_other_params_is_ignored(make_params, tiny, tmp_path, capsys):
    checkpoint = tmp_path / "ckpt.pt"
    params = quick(make_params, **{"train.epochs": 1})
    training.fit(params, *tiny, CPU, checkpoint=checkpoint, fingerprint="old", progress=False)
    capsys.readouterr()
    seen = []
    training.fit(params, *tiny, CPU, checkpoint=checkpoint, fingerprint="new", progress=False,
                 on_epoch=lambda r: seen.append(r["epoch"]))
    assert "ignoring checkpoint" in capsys.readouterr().out and seen == [1]


def test_fingerprint_depends_on_params_and_data(make_params, tmp_path):
    data_file = tmp_path / "d.pt"
    data_file.write_bytes(b"one")
    base = checkpoint.run_fingerprint(make_params(), [data_file], CPU)
    assert base == checkpoint.run_fingerprint(make_params(), [data_file], CPU)
    assert base != checkpoint.run_fingerprint(make_params(**{"train.lr": 0.5}), [data_file], CPU)
    data_file.write_bytes(b"two")
    assert base != checkpoint.run_fingerprint(make_params(), [data_file], CPU)


def test_device_selection_follows_cuda_availability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.pick_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.pick_device() == torch.device("cuda")
