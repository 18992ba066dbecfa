"""The loss (NLL), ECE and the reliability bins against values computed by hand on known probabilities."""

import math

import pytest
import torch

from mnist_dvc import calibration, metrics_files
from mnist_dvc.inference import loss_and_accuracy


def ten_images(top_logit: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ten images, the model's argmax is digit 0 for all and right on nine (the tenth is a 1):
    the top logit against nine zeros gives a top probability of e^a / (e^a + 9)."""
    logits = torch.zeros(10, 10, dtype=torch.float64)  # exact probabilities
    logits[:, 0] = top_logit
    labels = torch.tensor([0] * 9 + [1])
    return logits, labels


def test_ece_of_a_90_percent_model_by_hand():
    """Right on 90% of the images: always sure (top probability 1.0) gives ECE |0.9 - 1.0| = 0.1,
    always 0.9 sure gives 0 (e^a = 81: 81 / 90 = 0.9). Catches binning by the true class's
    probability instead of the top one (the wrong image's 1/90 would land in the first bin and
    the ECE of the 0.9 model would be about 0.09), and accuracy measured against the wrong labels."""
    sure = calibration.reliability_bins(*ten_images(100.0))
    assert calibration.ece(sure) == pytest.approx(0.1, abs=1e-12)
    assert [b.count for b in sure] == [0] * 14 + [10]
    assert sure[14].confidence == pytest.approx(1.0) and sure[14].accuracy == pytest.approx(0.9)

    honest = calibration.reliability_bins(*ten_images(math.log(81)))
    assert calibration.ece(honest) == pytest.approx(0.0, abs=1e-12)
    assert [b.count for b in honest] == [0] * 13 + [10, 0]  # 0.9 is in (13/15, 14/15]
    assert honest[13].confidence == pytest.approx(0.9) and honest[13].accuracy == pytest.approx(0.9)


def test_ece_weights_each_bin_by_its_share():
    """Four images sure and right (|1 - 1| = 0) and six at top probability 0.6 with three right
    (|0.5 - 0.6| = 0.1): ECE = 0.6 x 0.1 = 0.06. Catches an unweighted mean over the non-empty bins
    (0.05) or over all 15 bins, and a bin's accuracy taken as its share of right images overall."""
    logits = torch.zeros(10, 10, dtype=torch.float64)  # exact probabilities
    logits[:4, 0] = 100.0
    logits[4:, 0] = math.log(0.6 * 9 / 0.4)  # e^a / (e^a + 9) = 0.6
    labels = torch.tensor([0, 0, 0, 0, 0, 0, 0, 1, 1, 1])
    bins = calibration.reliability_bins(logits, labels)
    assert calibration.ece(bins) == pytest.approx(0.06, abs=1e-12)
    middle = bins[8]  # 0.6 is in (8/15, 9/15]
    assert (middle.count, middle.accuracy) == (6, pytest.approx(0.5))
    assert middle.confidence == pytest.approx(0.6)
    assert [b.count for b in bins] == [0] * 8 + [6] + [0] * 5 + [4]
    assert [(b.low, b.high) for b in bins[:2]] == [(0.0, pytest.approx(1 / 15)),
                                                   (pytest.approx(1 / 15), pytest.approx(2 / 15))]


def test_a_confidence_exactly_on_an_edge_goes_to_the_bin_below():
    """Bins are (k/15, (k+1)/15]. Three (or five) equal top logits and the rest -inf give a top
    probability of exactly 1/3 (or 1/5) as a double, and 1/3 * 15 == 5.0, 1/5 * 15 == 3.0 exactly:
    true edges, not 0.5999999999999998. Bug caught: left-closed bins [k/15, (k+1)/15) (floor
    instead of ceil), which put them one bin up."""
    logits = torch.full((2, 10), -math.inf, dtype=torch.float64)
    logits[0, :3] = 0.0
    logits[1, :5] = 0.0
    top = logits.softmax(dim=1).max(dim=1).values
    assert top.tolist() == [1 / 3, 1 / 5] and (top * 15).tolist() == [5.0, 3.0]  # exact edges
    bins = calibration.reliability_bins(logits, torch.tensor([0, 0]))
    assert [k for k, b in enumerate(bins) if b.count] == [2, 4]  # (2/15, 3/15] and (4/15, 5/15]


def test_loss_is_the_nll_by_hand():
    """The test loss is the NLL: nine images with probability 0.9 on their true label and one with
    1/90 give (9 (-log 0.9) + log 90) / 10, and accuracy 0.9. Catches the NLL of the top
    probability instead of the true label's (that would be -log 0.9), and a sum instead of a mean."""
    loss, accuracy = loss_and_accuracy(*ten_images(math.log(81)))
    assert loss == pytest.approx((9 * -math.log(0.9) + math.log(90)) / 10, abs=1e-12)
    assert accuracy == pytest.approx(0.9)


def test_bins_survive_the_csv_file(tmp_path):
    """metrics/calibration.csv holds both models' bins and gives them back as they were (to the
    file's six decimals). Catches the hand-in's columns filled from the raw model's bins and a
    column read back under the wrong name."""
    raw = calibration.reliability_bins(*ten_images(100.0))
    handin = calibration.reliability_bins(*ten_images(math.log(81)))
    metrics_files.write_csv(tmp_path / "calibration.csv", calibration.csv_rows(raw, handin))
    rows = metrics_files.read_csv(tmp_path / "calibration.csv")
    assert len(rows) == calibration.BINS
    for model, bins in (("raw", raw), ("handin", handin)):
        back = calibration.bins_from_rows(rows, model)
        assert [b.count for b in back] == [b.count for b in bins]
        for a, b in zip(back, bins, strict=True):
            assert (a.low, a.high, a.confidence, a.accuracy) == pytest.approx(
                (b.low, b.high, b.confidence, b.accuracy), abs=1e-6)
