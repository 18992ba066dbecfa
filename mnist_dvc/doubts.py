"""What makes an answer about someone's image doubtful: more than one digit in it, or a model
that is unsure of every digit (a mark, a letter, a scribble rather than a digit)."""

import numpy as np

INK = 0.2  # a column of the 28×28 input holds ink where some pixel exceeds this
SHARE = 0.2  # a part with at least this share of the ink counts as a digit of its own
# Measured with mnist_dvc.images on MNIST's test digits: 1 of 3,000 single digits splits into two
# such parts, 495 of 500 pairs of test digits side by side (0 to 10 px apart, or touching) do.
UNSURE = 0.5  # a calibrated top probability below this: no digit is likely


def parts(field: np.ndarray) -> int:
    """How many side-by-side parts of the (28, 28) input, separated by columns without ink, each
    hold at least SHARE of the ink."""
    inked = (field > INK).any(axis=0)
    mass = field.sum(axis=0)
    total, count, current = float(mass.sum()), 0, 0.0
    for column, has_ink in enumerate(inked):
        if has_ink:
            current += float(mass[column])
        if (not has_ink or column == len(inked) - 1) and current:
            count += current >= SHARE * total
            current = 0.0
    return count


def doubt(field: np.ndarray, top_probability: float) -> str | None:
    """Why the answer for this input is doubtful, as a phrase with its fix; None if it is not."""
    found = parts(field)
    if found > 1:
        return f"{found} digits side by side? crop each digit into an image of its own"
    if top_probability < UNSURE:
        return (f"no digit is likely (the likeliest has {top_probability:.2f}): check the image "
                "shows one digit")
    return None
