"""The study's data sets, as in-memory tensors: images in [0, 1] (N x C x H x W) and labels.

    digits        scikit-learn's bundled handwritten digits, 8x8, 1,797 images (offline default)
    mnist         torchvision MNIST, 28x28            (a local copy under --data-root)
    fashion-mnist torchvision FashionMNIST, 28x28     (a local copy under --data-root)
    cifar10       torchvision CIFAR-10, 3x32x32       (a local copy under --data-root)

Digits has no official split: a fixed, stratified 80/20 split (seed 0) is used everywhere, so a
number in one run compares with a number in any other. torchvision is imported only for the
other three, and nothing is ever downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from ..core.errors import UserFacingError

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


class DataError(UserFacingError):
    """A data set that cannot be loaded here; the message says what to do."""


@dataclass
class Split:
    """Images (float, N x C x H x W in [0, 1]) and integer labels (N)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Dataset:
    """A train and a test split plus what the models need to know about their shape."""

    name: str
    train: Split
    test: Split
    classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])


def load(name: str = "digits", data_root: str | os.PathLike | None = None, limit: int | None = None) -> Dataset:
    """A data set by name. `limit` keeps only the first `limit` training images (for quick runs)."""
    if name == "digits":
        dataset = load_digits()
    elif name in ("mnist", "fashion-mnist", "cifar10"):
        dataset = load_torchvision(name, data_root)
    else:
        raise DataError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}.")
    if limit is not None:
        dataset.train = Split(dataset.train.images[:limit], dataset.train.labels[:limit])
    return dataset


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits (pixel values 0..16, scaled to [0, 1]) with the fixed split."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    images = bunch.images.astype(np.float32)[:, None] / 16.0
    labels = bunch.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=labels
    )
    return Dataset(
        "digits",
        Split(torch.from_numpy(train_x), torch.from_numpy(train_y)),
        Split(torch.from_numpy(test_x), torch.from_numpy(test_y)),
        classes=10,
    )


_TORCHVISION_CLASSES = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}


def load_torchvision(name: str, data_root: str | os.PathLike | None) -> Dataset:
    """MNIST, FashionMNIST or CIFAR-10 from a local torchvision-layout copy (never downloaded)."""
    class_name = _TORCHVISION_CLASSES[name]
    layout = f"{class_name}/raw/" if name != "cifar10" else "cifar-10-batches-py/"
    if data_root is None:
        raise DataError(
            f"{name} needs a local copy: pass --data-root DIR, where DIR holds torchvision's {layout} folder "
            "(e.g. made once elsewhere with torchvision.datasets."
            f"{class_name}(DIR, download=True)). The offline default is --data digits."
        )
    if not os.path.isdir(data_root):
        raise DataError(f"--data-root {data_root} is not a folder (expected it to hold {layout}).")
    try:
        import torchvision
    except ImportError as error:
        raise DataError(
            f"{name} is read through torchvision, which is not installed; install the torchvision that pairs "
            "with your torch (e.g. torchvision==0.26.0 for torch==2.11.0), or use --data digits."
        ) from error
    factory = getattr(torchvision.datasets, class_name)
    splits = []
    for train in (True, False):
        try:
            data = factory(str(data_root), train=train, download=False)
        except RuntimeError as error:
            raise DataError(
                f"no {name} under {data_root} (expected torchvision's {layout} there): {error}"
            ) from error
        images = torch.as_tensor(np.asarray(data.data), dtype=torch.float32) / 255.0
        images = images[:, None] if images.ndim == 3 else images.permute(0, 3, 1, 2)  # CIFAR is N x H x W x C
        splits.append(Split(images.contiguous(), torch.as_tensor(np.asarray(data.targets), dtype=torch.int64)))
    return Dataset(name, splits[0], splits[1], classes=10)
