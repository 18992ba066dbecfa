"""Classify image files in batches: each file's digit (the argmax), its probabilities (the softmax
of the logits times a calibration factor) and any doubt about the answer."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from mnist_dvc.doubts import doubt
from mnist_dvc.errors import MnistError
from mnist_dvc.images import load_digit
from mnist_dvc.inference import eval_batch_size


@dataclass(frozen=True)
class Answer:
    """One file's result: the digit (argmax) and its probability, `top` the (digit, probability)
    pairs most probable first, `doubt` why the answer may not mean much (two digits, none); or
    `error`, the line that says why the file has no answer."""

    path: Path
    digit: int | None = None
    probability: float | None = None
    top: tuple[tuple[int, float], ...] = ()
    error: str | None = None
    doubt: str | None = None


@torch.inference_mode()
def classify(model: torch.nn.Module, files: list[Path], top: int = 1, batch_size: int | None = None,
             progress: bool | None = None, factor: float = 1.0) -> Iterator[Answer]:
    """Answers in the order of `files`, a batch at a time: the files of a batch are loaded, the ones
    that load go through the model in one forward pass (fp32: these are probabilities people read),
    and the batch's answers, errors included, come out before the next batch is read.
    Probabilities are softmax(logits × factor): 1.0 the model's own, the hand-in's factor calibrated.

    A progress bar counts files on stderr, only on a terminal (progress=None) or as asked."""
    device = next(model.parameters()).device
    batch_size = batch_size or eval_batch_size(device)
    model.eval()
    with tqdm(total=len(files), unit="image", desc="predict", leave=False,
              disable=None if progress is None else not progress) as bar:
        for start in range(0, len(files), batch_size):
            chunk = files[start:start + batch_size]
            inputs, errors = {}, {}
            for i, path in enumerate(chunk):
                try:
                    inputs[i] = load_digit(path)
                except MnistError as exc:
                    errors[i] = str(exc)
            answers = dict(zip(inputs, answer_batch(model, chunk, inputs, top, device, factor), strict=True))
            for i, path in enumerate(chunk):
                yield answers.get(i) or Answer(path, error=errors[i])
            bar.update(len(chunk))


def answer_batch(model, chunk: list[Path], inputs: dict, top: int, device, factor: float) -> list[Answer]:
    """The answers for the model inputs `inputs` {index in chunk: (1, 28, 28)}, one forward pass."""
    if not inputs:
        return []
    batch = torch.stack(list(inputs.values())).to(device)
    logits = model(batch.contiguous(memory_format=torch.channels_last)).float() * factor
    digits = logits.argmax(dim=1)
    softmax = torch.softmax(logits, dim=1)
    chosen = softmax.gather(1, digits[:, None])[:, 0]
    probabilities, classes = softmax.topk(top, dim=1)
    return [Answer(chunk[i], digit, p, tuple(zip(cs, ps, strict=True)),
                   doubt=doubt(inputs[i][0].numpy(), p))
            for i, digit, p, cs, ps in zip(inputs, digits.tolist(), chosen.tolist(), classes.tolist(),
                                           probabilities.tolist(), strict=True)]
