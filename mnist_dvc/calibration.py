"""How well a model's confidence matches how often it is right: the expected calibration error
(ECE) and the reliability diagram's bins (the negative log-likelihood is the test loss,
inference.loss_and_accuracy).

The course's grader scores the mean probability of the true label, so it is a calibration measure:
an underconfident model (right more often than its top probability says, as label smoothing trains
it) loses to the draw what its argmax keeps. The hand-in's last-layer factor is temperature scaling.
"""

from dataclasses import dataclass

import torch

BINS = 15  # equal-width bins of the top softmax probability over [0, 1], as in Guo et al. (2017)


@dataclass(frozen=True)
class Bin:
    """One confidence bin: the images whose top probability lies in (low, high] ([0, high] for
    the first); their mean top probability and their argmax accuracy (both 0 when empty)."""

    low: float
    high: float
    count: int
    confidence: float
    accuracy: float


def reliability_bins(logits: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> list[Bin]:
    """The images grouped by their TOP softmax probability (the confidence of the argmax), with
    each bin's mean confidence and its accuracy."""
    top, predicted = logits.double().softmax(dim=1).max(dim=1)
    right = (predicted == labels).double()
    # (k/bins, (k+1)/bins] -> k; a confidence of exactly 0 (impossible for a softmax) -> 0.
    index = (top * bins).ceil().long().sub(1).clamp(0, bins - 1)
    out = []
    for k in range(bins):
        member = index == k
        count = int(member.sum())
        out.append(Bin(low=k / bins, high=(k + 1) / bins, count=count,
                       confidence=top[member].mean().item() if count else 0.0,
                       accuracy=right[member].mean().item() if count else 0.0))
    return out


def ece(bins: list[Bin]) -> float:
    """Expected calibration error: |accuracy - mean confidence| of each bin, weighted by the
    bin's share of the images."""
    total = sum(b.count for b in bins)
    return sum(b.count / total * abs(b.accuracy - b.confidence) for b in bins) if total else 0.0


def csv_rows(raw: list[Bin], handin: list[Bin]) -> list[dict]:
    """One row per bin for metrics/calibration.csv: its edges, then count, mean confidence and
    accuracy for the raw model and for the hand-in."""
    return [{"bin": k, "low": r.low, "high": r.high,
             "raw_count": r.count, "raw_confidence": r.confidence, "raw_accuracy": r.accuracy,
             "handin_count": h.count, "handin_confidence": h.confidence, "handin_accuracy": h.accuracy}
            for k, (r, h) in enumerate(zip(raw, handin, strict=True))]


def bins_from_rows(rows: list[dict], model: str) -> list[Bin]:
    """The bins of one model ("raw" or "handin") back from metrics/calibration.csv's rows."""
    return [Bin(low=r["low"], high=r["high"], count=int(r[f"{model}_count"]),
                confidence=r[f"{model}_confidence"], accuracy=r[f"{model}_accuracy"]) for r in rows]
