"""Read the MNIST files in their original IDX format (gzipped or not), with numpy only.

The edge path (bench, tests, export verification) needs MNIST without TensorFlow, and these machines
cannot download anything, so the loader reads a local copy: `--data DIR` or $DIGITS_MNIST_DIR.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENV_VAR = "DIGITS_MNIST_DIR"
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class MnistNotFound(FileNotFoundError):
    """The MNIST files are not where we looked; the message says where and how to point at them."""


@dataclass(frozen=True)
class MnistSplit:
    images: np.ndarray  # (n, 28, 28) uint8, white ink on black, as published
    labels: np.ndarray  # (n,) uint8 digits 0-9


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file: 2 zero bytes, a dtype code, the number of dimensions, big-endian sizes, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=_IDX_DTYPES[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(shape))} values, found {data.size}")
    return data.reshape(shape)


def find_mnist_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder holding the IDX files: the argument, else $DIGITS_MNIST_DIR; None when neither is set."""
    chosen = data_dir if data_dir is not None else os.environ.get(ENV_VAR)
    return Path(chosen).expanduser() if chosen else None


def _locate(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise MnistNotFound(
        f"MNIST file {stem}[.gz] not found in {folder}: pass --data DIR or set {ENV_VAR} to the folder "
        "holding the four IDX files")


def load_split(split: str, data_dir: str | os.PathLike | None = None) -> MnistSplit:
    """Load 'train' or 'test' from a local IDX copy."""
    folder = find_mnist_dir(data_dir)
    if folder is None:
        raise MnistNotFound(f"no MNIST folder given: pass --data DIR or set {ENV_VAR}")
    if not folder.is_dir():
        raise MnistNotFound(f"MNIST folder {folder} does not exist: pass --data DIR or set {ENV_VAR}")
    image_stem, label_stem = _FILES[split]
    images = read_idx(_locate(folder, image_stem))
    labels = read_idx(_locate(folder, label_stem))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"MNIST {split} files in {folder} disagree: images {images.shape}, labels {labels.shape}")
    return MnistSplit(images=images, labels=labels)


def mnist_available(data_dir: str | os.PathLike | None = None) -> bool:
    try:
        folder = find_mnist_dir(data_dir)
        return folder is not None and all(_locate(folder, stem) for pair in _FILES.values() for stem in pair)
    except MnistNotFound:
        return False
