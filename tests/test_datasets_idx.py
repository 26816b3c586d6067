"""IDX parsing and verified installs on small synthetic files (no network)."""
import gzip
import hashlib

import numpy as np
import pytest

from refnet.datasets._cache import ChecksumError, install_file
from refnet.datasets.idx import IdxError, read_header, read_images, read_labels, write_idx


@pytest.fixture
def idx_pair(tmp_path, rng):
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    write_idx(tmp_path / "img", images)
    write_idx(tmp_path / "lab", labels)
    return tmp_path / "img", tmp_path / "lab", images, labels


def test_good_files_round_trip(idx_pair):
    img, lab, images, labels = idx_pair
    assert read_header(img)[:2] == (0x00000803, (7, 28, 28))
    assert read_header(lab)[:2] == (0x00000801, (7,))
    X, y = read_images(img), read_labels(lab)
    assert X.shape == (7, 784) and X.dtype == np.uint8
    np.testing.assert_array_equal(X, images.reshape(7, 784))
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, labels)


def test_truncated_file_names_the_file_and_the_remedy(idx_pair):
    img = idx_pair[0]
    img.write_bytes(img.read_bytes()[:-5])
    with pytest.raises(IdxError) as e:
        read_images(img)
    msg = str(e.value)
    assert str(img) in msg and "implies" in msg and "delete it" in msg and "fetch" in msg


def test_bad_magic_is_rejected(idx_pair):
    img = idx_pair[0]
    data = bytearray(img.read_bytes())
    data[2] = 0x09  # type byte: not uint8 IDX
    img.write_bytes(bytes(data))
    with pytest.raises(IdxError, match="magic number 0x00000903"):
        read_images(img)


def test_labels_file_read_as_images_is_rejected(idx_pair):
    with pytest.raises(IdxError, match="expected 0x00000803"):
        read_images(idx_pair[1])


def test_label_out_of_range(tmp_path):
    write_idx(tmp_path / "lab", np.array([0, 3, 10, 2], dtype=np.uint8))
    with pytest.raises(IdxError, match="1 labels outside 0..9 .*index 2: 10"):
        read_labels(tmp_path / "lab")


def test_empty_file(tmp_path):
    (tmp_path / "x").write_bytes(b"\x00\x00")
    with pytest.raises(IdxError, match="too short"):
        read_header(tmp_path / "x")


def test_install_verifies_uncompressed_content(idx_pair, tmp_path):
    img = idx_pair[0]
    raw = img.read_bytes()
    gz = tmp_path / "img.gz"
    gz.write_bytes(gzip.compress(raw))
    dest = tmp_path / "cache" / "img"
    digest = install_file(gz, dest, hashlib.sha256(raw).hexdigest(), "test")
    assert dest.read_bytes() == raw and digest == hashlib.sha256(raw).hexdigest()


def test_wrong_checksum_leaves_nothing_behind(idx_pair, tmp_path):
    dest = tmp_path / "cache" / "img"
    with pytest.raises(ChecksumError, match="differs from the expected"):
        install_file(idx_pair[0], dest, "0" * 64, "test")
    assert list((tmp_path / "cache").iterdir()) == []  # no file, no temporary left over


def test_wrong_checksum_keeps_the_previous_good_file(idx_pair, tmp_path):
    img, lab = idx_pair[:2]
    dest = tmp_path / "cache" / "img"
    install_file(img, dest, hashlib.sha256(img.read_bytes()).hexdigest(), "test")
    with pytest.raises(ChecksumError):
        install_file(lab, dest, "0" * 64, "test")
    assert dest.read_bytes() == img.read_bytes()


def test_corrupt_gzip_is_a_checksum_error(tmp_path):
    bad = tmp_path / "x.gz"
    bad.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(ChecksumError, match="cannot read"):
        install_file(bad, tmp_path / "out", "0" * 64, "test")
