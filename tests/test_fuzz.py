"""Fuzzing the IDX reader: any bytes give either the tensor the header describes or one MnistError line.

Never another exception, never a hang (hypothesis `deadline`), never an allocation the bytes
could not fill (tracemalloc for Python memory, the result's storage size for torch memory).
"""

import gzip
import math
import struct
import tracemalloc
from datetime import timedelta

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mnist_dvc import data
from mnist_dvc.errors import MnistError

FUZZ = settings(max_examples=300, deadline=timedelta(seconds=2))
HUGE = [2**32 - 1, 2**31, 2**31 - 1, 2**24, 60000, 10000, 784, 28]


def idx_header(dims) -> bytes:
    return struct.pack(">HBB", 0, 0x08, len(dims)) + struct.pack(f">{len(dims)}I", *dims)


@st.composite
def valid_idx(draw, min_dim=0):
    dims = draw(st.lists(st.integers(min_dim, 6), min_size=1, max_size=4))
    size = math.prod(dims)
    return idx_header(dims) + draw(st.binary(min_size=size, max_size=size))


@st.composite
def mutated_idx(draw):
    raw = bytearray(draw(valid_idx()))
    for kind in draw(st.lists(st.sampled_from(["flip", "truncate", "append", "huge_dim"]),
                              min_size=1, max_size=3)):
        if kind == "flip" and raw:
            raw[draw(st.integers(0, len(raw) - 1))] ^= draw(st.integers(1, 255))
        elif kind == "truncate" and raw:
            raw = raw[:draw(st.integers(0, len(raw) - 1))]
        elif kind == "append":
            raw += draw(st.binary(min_size=1, max_size=40))
        elif kind == "huge_dim" and len(raw) >= 8 and 1 <= raw[3] <= 4:
            at = 4 + 4 * draw(st.integers(0, min(raw[3], (len(raw) - 4) // 4) - 1))
            value = draw(st.sampled_from(HUGE) | st.integers(0, 2**32 - 1))
            raw[at:at + 4] = struct.pack(">I", value)
    return bytes(raw)


ANY_IDX = st.one_of(
    st.binary(max_size=200),                                   # random bytes
    st.binary(max_size=60).map(lambda b: b"\x00\x00\x08" + b),  # right magic, random rest
    mutated_idx(),
    valid_idx(),
)


def measured(read, arg):
    """(the tensor or MnistError that read(arg) gives, peak Python memory it allocated)."""
    tracemalloc.start()
    try:
        outcome = read(arg)
    except MnistError as exc:
        outcome = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return outcome, peak


def check_outcome(raw: bytes, outcome) -> None:
    """The property: the tensor the header of `raw` describes, or a one-line MnistError."""
    if isinstance(outcome, MnistError):
        message = str(outcome)
        assert message and "\n" not in message and "\r" not in message
        return
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = list(struct.unpack(f">{ndim}I", raw[4:header]))
    assert isinstance(outcome, torch.Tensor) and outcome.dtype == torch.uint8
    assert list(outcome.shape) == dims
    assert outcome.numel() == len(raw) - header
    assert outcome.untyped_storage().nbytes() == len(raw) - header  # nothing beyond the data
    assert outcome.flatten().tolist() == list(raw[header:])


@FUZZ
@given(ANY_IDX)
def test_parse_idx_gives_header_tensor_or_one_line_error(raw):
    outcome, peak = measured(lambda r: data.parse_idx(r, "fuzz.idx"), raw)
    check_outcome(raw, outcome)
    assert peak < 4 * len(raw) + 64 * 1024


@settings(max_examples=100, deadline=timedelta(seconds=2))
@given(valid_idx(min_dim=1))
def test_parse_idx_accepts_every_valid_file(raw):
    outcome, _ = measured(data.parse_idx, raw)
    assert isinstance(outcome, torch.Tensor)
    check_outcome(raw, outcome)


@settings(max_examples=50, deadline=timedelta(seconds=2))
@given(valid_idx(), st.integers(0, 3), st.sampled_from(HUGE))
def test_parse_idx_refuses_huge_header_dims(raw, which, value):
    raw = bytearray(raw)
    at = 4 + 4 * min(which, raw[3] - 1)
    raw[at:at + 4] = struct.pack(">I", value)
    raw = bytes(raw)
    outcome, peak = measured(data.parse_idx, raw)
    assert isinstance(outcome, MnistError)  # dims are at most 6, so the claim no longer fits
    check_outcome(raw, outcome)
    assert peak < 4 * len(raw) + 64 * 1024


@st.composite
def gz_files(draw):
    """gzip of any IDX-ish bytes, sometimes with the compressed bytes damaged too."""
    gz = bytearray(gzip.compress(draw(ANY_IDX), mtime=0))
    damage = draw(st.sampled_from(["none", "flip", "truncate", "append", "random"]))
    if damage == "flip":
        gz[draw(st.integers(0, len(gz) - 1))] ^= draw(st.integers(1, 255))
    elif damage == "truncate":
        gz = gz[:draw(st.integers(0, len(gz) - 1))]
    elif damage == "append":
        gz += draw(st.binary(min_size=1, max_size=40))
    elif damage == "random":
        gz = bytearray(draw(st.binary(max_size=200)))
    return bytes(gz)


@pytest.fixture(scope="module")
def gz_path(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "fuzz-idx1-ubyte.gz"


@settings(max_examples=200, deadline=timedelta(seconds=2))
@given(gz=gz_files())
def test_read_idx_gz_gives_header_tensor_or_one_line_error(gz_path, gz):
    gz_path.write_bytes(gz)
    outcome, peak = measured(data.read_idx_gz, gz_path)
    if isinstance(outcome, torch.Tensor):
        check_outcome(gzip.decompress(gz), outcome)
    else:
        check_outcome(b"", outcome)
    # Read in 1 MiB chunks: memory follows these small inputs, far below the 64 MiB cap.
    assert peak < 4 * 2**20
