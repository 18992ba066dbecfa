"""The starter files, the dataset of the course's starter code (train_data.pth, train_labels.pth,
test_data.pth, test_labels.pth, written with torch.save), as an alternative source for the fetch
and split stages."""

import pytest
import torch
import yaml
from repo_helpers import env_with, make_repo, run
from test_stage_errors import assert_nothing_left, assert_one_line_error, make_project, run_stage

from mnist_dvc import data, download, mnist, starter_files
from mnist_dvc.digits import Digits
from mnist_dvc.errors import MnistError


def write_starter_dir(folder, train: Digits, test: Digits, images_as=None, four_d=False, **replace):
    """The starter files in `folder`. `images_as` ('float32', ...) stores images / 255 in that
    dtype, `four_d` adds the channel axis; `replace` puts any object (None: no file) in place of
    one file, named by its stem (train_data=..., test_labels=...)."""
    folder.mkdir(parents=True, exist_ok=True)
    for which, digits in (("train", train), ("test", test)):
        images = digits.images
        if images_as is not None:
            images = images.to(getattr(torch, images_as)) / 255
        if four_d:
            images = images.unsqueeze(1)
        for name, obj in zip(mnist.STARTER_FILES[which], (images, digits.labels), strict=True):
            obj = replace.get(name.removesuffix(".pth"), obj)
            if obj is not None:
                torch.save(obj, folder / name)
    return folder


def small_sets(n_train=20, n_test=10) -> tuple[Digits, Digits]:
    g = torch.Generator().manual_seed(0)

    def make(n):
        return Digits(torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g),
                      torch.arange(n) % 10)

    return make(n_train), make(n_test)


def assert_same_digits(a: Digits, b: Digits) -> None:
    assert a.images.dtype == b.images.dtype == torch.uint8 and a.images.shape == b.images.shape
    assert a.labels.dtype == b.labels.dtype == torch.int64
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def first(digits: Digits, n: int) -> Digits:
    return digits.take(torch.arange(n))


# --- the starter files give exactly the IDX route's data ------------------------------------------

@pytest.mark.parametrize("images_as, four_d", [(None, False), ("float32", True)])
def test_starter_files_from_real_mnist_prepare_byte_identical_tensors(tmp_path, mnist_dir, mnist_train,
                                                                      mnist_test, images_as, four_d):
    """All 70,000 real digits saved the starter code's way, as uint8 (N, 28, 28) and as float [0, 1]
    (N, 1, 28, 28): train.pt, valid.pt and test.pt hold the same bytes as from the IDX files.
    Catches a float->uint8 conversion that truncates instead of rounding (0.8 * 255 = 203.99998
    -> 203), a dropped channel axis read as 28 images, labels kept in another dtype, a reordered set."""
    starter = write_starter_dir(tmp_path / "starter", mnist_train, mnist_test, images_as, four_d)
    data.prepare(mnist_dir, tmp_path / "from_idx", 0.167, False, 0)
    data.prepare(starter, tmp_path / "from_starter", 0.167, False, 0)
    for split in ("train", "valid", "test"):
        assert ((tmp_path / "from_starter" / f"{split}.pt").read_bytes()
                == (tmp_path / "from_idx" / f"{split}.pt").read_bytes()), split


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_every_pixel_level_survives_every_float_dtype(dtype):
    """k / 255 stored in any float dtype comes back as k, for all 256 levels: catches truncation
    (int(x * 255)) and arithmetic in the stored low precision (bf16 * 255 loses levels)."""
    levels = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16).repeat(1, 2, 2)[:, :28, :28]
    floats = levels.to(getattr(torch, dtype)) / 255
    assert torch.equal(starter_files.starter_images(floats, "x"), levels)


def test_views_of_larger_tensors_are_stored_compactly(tmp_path):
    """torch.save of a slice keeps the whole underlying storage, and so would the prepared file if
    the loaded view went on unchanged: the test set saved from slices must give the same bytes."""
    train, test = small_sets()
    compact = write_starter_dir(tmp_path / "compact", train, test)
    big_images = torch.cat([test.images, test.images])
    big_labels = torch.cat([test.labels, test.labels])
    sliced = write_starter_dir(tmp_path / "sliced", train, test, test_data=big_images[:10],
                               test_labels=big_labels[:10])
    for name, folder in (("a", compact), ("b", sliced)):
        data.prepare(folder, tmp_path / name, 0.5, False, 0)
    assert (tmp_path / "a/test.pt").read_bytes() == (tmp_path / "b/test.pt").read_bytes()


@pytest.mark.parametrize("labels_dtype", ["uint8", "int8", "int16", "int32", "int64"])
def test_any_integer_label_dtype_and_uint8_four_d_images(tmp_path, labels_dtype):
    """The starter files may keep labels in any integer dtype and images as (N, 1, 28, 28) uint8."""
    train, test = small_sets()
    cast = lambda d: d.labels.to(getattr(torch, labels_dtype))  # noqa: E731
    folder = write_starter_dir(tmp_path, train, test, four_d=True, train_labels=cast(train),
                               test_labels=cast(test))
    got_train, got_test = data.read_sets(folder)
    assert_same_digits(got_train, train)
    assert_same_digits(got_test, test)


# --- every bad file is one clear error, from fetch and from split, leaving nothing --------------

class RunsCode:
    """A pickled object whose unpickling would run code (writes PWNED in the working folder)."""

    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def _bad_cases():
    train, test = small_sets()
    n = len(train)
    floats = train.images.float() / 255
    return {
        "images int64": (dict(train_data=train.images.long()),
                         "train_data.pth has dtype int64: images must be uint8 (0-255) or float (0-1)"),
        "images float 0-255": (dict(train_data=train.images.float()),
                               "train_data.pth holds values from 0 to 255, outside [0, 1]"),
        "images normalised": (dict(train_data=(floats - 0.1307) / 0.3081),
                              "train_data.pth holds values from -0.424"),
        "images NaN": (dict(test_data=torch.full((10, 28, 28), float("nan"))),
                       "test_data.pth holds NaN or infinite values"),
        "images flat": (dict(train_data=train.images.reshape(n, 784)),
                        f"train_data.pth has shape [{n}, 784], expected [N, 28, 28] or [N, 1, 28, 28]"),
        "images RGB": (dict(train_data=train.images[:, None].repeat(1, 3, 1, 1)),
                       f"has shape [{n}, 3, 28, 28], expected"),
        "images 27 wide": (dict(train_data=train.images[:, None, :, :27]),
                           f"has shape [{n}, 1, 28, 27], expected"),
        "images none": (dict(test_data=torch.zeros(0, 28, 28, dtype=torch.uint8)),
                        "test_data.pth holds no images"),
        "labels float": (dict(train_labels=train.labels.float()),
                         "train_labels.pth has dtype float32: labels must be integers 0-9"),
        "labels bool": (dict(train_labels=train.labels > 4), "has dtype bool: labels must be integers"),
        "labels one-hot": (dict(test_labels=torch.eye(10, dtype=torch.long)),
                           "test_labels.pth has shape [10, 10], expected [N]"),
        "labels 10": (dict(train_labels=train.labels + 1), "holds the label 10, outside 0-9"),
        "labels -1": (dict(train_labels=train.labels - 1), "holds the label -1, outside 0-9"),
        "count mismatch": (dict(train_labels=train.labels[:-1]),
                           f"train_data.pth holds {n} images but train_labels.pth holds {n - 1} labels"),
        "a dict": (dict(test_data={"data": test.images}), "test_data.pth holds a dict, not a dense tensor"),
        "sparse": (dict(test_labels=test.labels.to_sparse()), "holds a torch.sparse_coo tensor"),
        "numpy array": (dict(train_data=train.images.numpy()),
                        "train_data.pth holds a pickled object that could run code (numpy."),
        "pickled code": (dict(train_labels=RunsCode()),
                         "train_labels.pth holds a pickled object that could run code (exec), refused "
                         "unread"),
        "missing file": (dict(test_labels=None),
                         "test_labels.pth is missing: the starter code's dataset is four files"),
    }


BAD = _bad_cases()


def bad_folder(tmp_path, case: str):
    train, test = small_sets()
    replace, message = BAD[case]
    return write_starter_dir(tmp_path / "starter", train, test, **replace), message


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_starter_file_fails_fetch_with_one_line_and_no_output(tmp_path, monkeypatch, case):
    """Each way a starter file can be wrong: one line naming the file, the problem and the fix, and
    no data/raw (a half-copied folder would make split fail later, or worse, succeed)."""
    monkeypatch.chdir(tmp_path)  # where a pickled payload would write PWNED
    folder, message = bad_folder(tmp_path, case)
    dest = tmp_path / "raw"
    with pytest.raises(MnistError) as error:
        download.fetch(dest, local_dir=folder)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not dest.exists() and list(tmp_path.glob(".raw.*")) == []
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_starter_file_fails_split_with_no_output(tmp_path, monkeypatch, case):
    """The same files found in data/raw (put there by hand, or by an older fetch): split refuses
    them the same way and writes no data/prepared."""
    monkeypatch.chdir(tmp_path)
    folder, message = bad_folder(tmp_path, case)
    out = tmp_path / "prepared"
    with pytest.raises(MnistError) as error:
        data.prepare(folder, out, 0.5, False, 0)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not out.exists() and list(tmp_path.glob(".prepared.*")) == []
    assert not (tmp_path / "PWNED").exists()


def test_folder_with_both_sources_is_refused(tmp_path, mnist_dir):
    """IDX and .pth files side by side: which one a run used would be a guess."""
    train, test = small_sets()
    folder = write_starter_dir(tmp_path / "both", train, test)
    name = "t10k-labels-idx1-ubyte.gz"
    (folder / name).write_bytes((mnist_dir / name).read_bytes())
    for attempt in (lambda: download.fetch(tmp_path / "raw", local_dir=folder),
                    lambda: data.prepare(folder, tmp_path / "prepared", 0.5, False, 0)):
        with pytest.raises(MnistError, match="holds both MNIST .gz files .* and the starter code's .pth "
                                             "files .*: keep only one of the two sets"):
            attempt()
    assert not (tmp_path / "raw").exists() and not (tmp_path / "prepared").exists()


def test_failed_starter_fetch_keeps_the_previous_raw_data(tmp_path, mnist_dir):
    """data/raw is a persistent DVC output: a refused starter files folder must not destroy what is there."""
    dest = tmp_path / "raw"
    download.fetch(dest, local_dir=mnist_dir)
    folder, _ = bad_folder(tmp_path, "labels 10")
    with pytest.raises(MnistError):
        download.fetch(dest, local_dir=folder)
    assert sorted(p.name for p in dest.iterdir()) == sorted(mnist.IDX_FILES)


# --- through the stage scripts and DVC, as a user runs them ---------------------------------------

@pytest.mark.parametrize("case, fragments", [
    ("pickled code", ["train_labels.pth holds a pickled object that could run code (exec), "
                      "refused unread: save the tensor itself"]),
    ("images float 0-255", ["train_data.pth holds values from 0 to 255, outside [0, 1]",
                            "(x / 255)"]),
    ("count mismatch", ["holds 20 images but train_labels.pth holds 19 labels"]),
])
def test_fetch_stage_refuses_bad_starter_files(tmp_path, case, fragments):
    """`MNIST_LOCAL_DIR=<starter files folder> python -m stages.fetch`: exit 2, one stderr line, no data/raw,
    no temporary folder, no code run. Catches a traceback escaping, or a partial data/raw."""
    project = make_project(tmp_path / "project")
    folder, _ = bad_folder(tmp_path, case)
    done = run_stage(project, "fetch", local_dir=folder)
    assert done.returncode == 2
    assert_one_line_error(done, *fragments)
    assert_nothing_left(project, "data/raw")
    assert not (project / "PWNED").exists()


def test_split_stage_refuses_bad_starter_files_in_data_raw(tmp_path):
    """Starter files put straight into data/raw (no fetch): split checks them too."""
    project = make_project(tmp_path / "project")
    bad_folder(tmp_path, "labels one-hot")
    (project / "data").mkdir()
    (tmp_path / "starter").rename(project / "data/raw")
    done = run_stage(project, "split")
    assert done.returncode == 2
    assert_one_line_error(done, "data/raw/test_labels.pth has shape [10, 10], expected [N]",
                          "labels.flatten()")
    assert_nothing_left(project, "data/prepared")


@pytest.mark.e2e
def test_dvc_pipeline_switches_to_the_starter_files_as_documented(tmp_path, mnist_dir, mnist_train,
                                                                  mnist_test):
    """The README's recipe: `MNIST_LOCAL_DIR=<starter files folder> dvc repro -f fetch`, then `dvc repro`.
    The starter files (real MNIST, float [0, 1], (N, 1, 28, 28)) replace the IDX files in data/raw,
    and split's outputs keep the very same hashes, so DVC does not retrain. Catches fetch ignoring
    the starter files folder, split reading a stale source, or any byte of difference in data/prepared."""
    repo = make_repo(tmp_path / "repo")  # TINY: the first 1200 train and 400 test images
    run(repo, "dvc", "repro", "split", env=env_with(mnist_dir))
    before = {p.name: p.read_bytes() for p in (repo / "data/prepared").iterdir()}
    lock_before = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]

    starter = write_starter_dir(tmp_path / "starter", first(mnist_train, 1500), first(mnist_test, 500),
                                images_as="float32", four_d=True)
    done = run(repo, "dvc", "repro", "-f", "fetch", env=env_with(starter))
    assert "the starter code's 4 .pth tensor files checked" in done.stdout
    assert sorted(p.name for p in (repo / "data/raw").iterdir()) == sorted(mnist.STARTER_NAMES)
    done = run(repo, "dvc", "repro", "split", env=env_with(starter))
    assert "(from the starter code's .pth files)" in done.stdout
    after = {p.name: p.read_bytes() for p in (repo / "data/prepared").iterdir()}
    assert after == before
    lock_after = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    out_hash = lambda lock, stage: lock[stage]["outs"][0]["md5"]  # noqa: E731
    assert out_hash(lock_after, "fetch") != out_hash(lock_before, "fetch")  # data/raw changed ...
    assert out_hash(lock_after, "split") == out_hash(lock_before, "split")  # ... data/prepared did not
