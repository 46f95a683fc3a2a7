import gzip

import numpy as np
import pytest

from edge_app.mnist import MnistNotFound, load_split, read_idx

from conftest import needs_mnist


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_read_idx_plain_and_gzipped(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a-idx3-ubyte").write_bytes(_idx_bytes(array))
    with gzip.open(tmp_path / "b-idx3-ubyte.gz", "wb") as f:
        f.write(_idx_bytes(array))
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte"), array)
    assert np.array_equal(read_idx(tmp_path / "b-idx3-ubyte.gz"), array)


def test_read_idx_rejects_bad_and_truncated_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"PK\x03\x04junk")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(_idx_bytes(np.zeros((4, 4), np.uint8))[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")


def test_missing_folder_names_the_way_out(tmp_path):
    with pytest.raises(MnistNotFound, match="DIGITS_MNIST_DIR"):
        load_split("test", tmp_path / "nowhere")


@needs_mnist
def test_local_copy_loads(mnist_test):
    assert mnist_test.images.shape == (10000, 28, 28) and mnist_test.images.dtype == np.uint8
    assert sorted(set(mnist_test.labels.tolist())) == list(range(10))
