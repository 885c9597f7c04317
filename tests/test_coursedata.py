"""The lesson's data: the bundled default loads offline, the course's MNIST pickle loads
from data_path, and a bad path fails with a DataError that names it."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from backprop_lab import coursedata

N_PIXELS = 64  # 8 x 8 digits


@pytest.fixture(scope="module")
def digits() -> coursedata.Data:
    return coursedata.get_data()


def test_default_data_has_the_lesson_shapes(digits: coursedata.Data) -> None:
    assert digits.x_train.shape == (coursedata.DIGITS_N_TRAIN, N_PIXELS) == (1437, 64)
    assert digits.x_valid.shape == (360, N_PIXELS)
    assert digits.y_train.shape == (1437,)
    assert digits.y_valid.shape == (360,)
    assert "digits" in digits.source


@pytest.mark.parametrize("split", ["train", "valid"])
def test_default_data_pixels_are_float32_in_unit_range(digits: coursedata.Data, split: str):
    x = getattr(digits, f"x_{split}")
    assert x.dtype == torch.float32
    assert x.min().item() == 0.0 and x.max().item() == 1.0  # /16 maps 0..16 onto [0, 1]


@pytest.mark.parametrize("split", ["train", "valid"])
def test_default_data_has_every_digit_as_an_int64_label(digits: coursedata.Data, split: str):
    y = getattr(digits, f"y_{split}")
    assert y.dtype == torch.int64
    assert y.unique().tolist() == list(range(10))


def test_default_data_is_the_same_every_call(digits: coursedata.Data) -> None:
    # A fixed split: every student and the grader see the same numbers.
    again = coursedata.get_data(None)
    for a, b in zip(digits, again, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(coursedata.get_data("").x_valid, digits.x_valid)  # "" means default


def test_data_unpacks_like_the_lessons_get_data(digits: coursedata.Data) -> None:
    x_train, y_train, x_valid, y_valid = digits
    assert all(isinstance(t, torch.Tensor) for t in (x_train, y_train, x_valid, y_valid))
    assert x_train is digits.x_train and y_valid is digits.y_valid


def write_mnist_pickle(path: Path, label_dtype: type = np.int64) -> tuple[np.ndarray, ...]:
    """A tiny file in the course's format: a Python-2-era pickle (protocol 2, read back
    with encoding='latin-1') of ((x_train, y_train), (x_valid, y_valid), (x_test, y_test))
    numpy arrays, gzip'd when the name ends in .gz."""
    rng = np.random.default_rng(0)
    splits = []
    for n in (7, 3, 2):
        x = rng.random((n, 784), dtype=np.float32)
        y = rng.integers(0, 10, n).astype(label_dtype)
        splits.append((x, y))
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        pickle.dump(tuple(splits), f, protocol=2)
    (x_train, y_train), (x_valid, y_valid), _ = splits
    return x_train, y_train, x_valid, y_valid


@pytest.mark.parametrize("name", ["mnist.pkl.gz", "mnist.pkl"])
@pytest.mark.parametrize("label_dtype", [np.int64, np.uint8], ids=["int64", "uint8"])
def test_mnist_pickle_loads_from_data_path(tmp_path: Path, name: str, label_dtype: type):
    path = tmp_path / name
    arrays = write_mnist_pickle(path, label_dtype)
    data = coursedata.get_data(path)
    assert [t.dtype for t in data] == [torch.float32, torch.int64, torch.float32, torch.int64]
    assert [tuple(t.shape) for t in data] == [(7, 784), (7,), (3, 784), (3,)]
    for got, want in zip(data, arrays, strict=True):
        assert np.array_equal(got.numpy(), want)
    assert str(path) in data.source
    assert torch.equal(coursedata.get_data(str(path)).x_train, data.x_train)  # str works too


def test_missing_data_path_raises_data_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "mnist.pkl.gz"
    with pytest.raises(coursedata.DataError, match="not a file") as info:
        coursedata.get_data(path)
    assert str(path) in str(info.value)


def test_directory_as_data_path_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(coursedata.DataError) as info:
        coursedata.get_data(tmp_path)
    assert str(tmp_path) in str(info.value)


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("mnist.pkl.gz", b"this is not gzip"),
        ("mnist.pkl.gz", _gzip(b"gzip, but not a pickle")),
        ("mnist.pkl.gz", _gzip(pickle.dumps(((1, 2), (3, 4)), protocol=2))),  # 2 splits
        ("mnist.pkl", b"not a pickle either"),
        ("mnist.pkl", b""),
    ],
    ids=["not-gzip", "not-pickle", "two-splits", "plain-garbage", "empty"],
)
def test_garbage_file_raises_data_error_naming_it(tmp_path: Path, name: str, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(coursedata.DataError) as info:
        coursedata.get_data(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(3, id="not-a-tuple"),
        pytest.param(((np.array(["a"]), np.array(["b"])),) * 3, id="string-arrays"),
        pytest.param(((1.0, 2), (3.0, 4), None), id="scalars"),
    ],
)
def test_wrong_structure_pickle_raises_data_error(tmp_path: Path, payload: object) -> None:
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(_gzip(pickle.dumps(payload, protocol=2)))
    with pytest.raises(coursedata.DataError) as info:
        coursedata.get_data(path)
    assert str(path) in str(info.value)
