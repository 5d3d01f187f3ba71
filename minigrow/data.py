"""Data: the two-spirals problem, MNIST from the bundled ``data/mnist.npz``, gzip IDX files (Fashion-MNIST),
splits and scaling. All randomness through an explicit Generator.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .validate import check_array, check_int, check_nonneg, check_positive, check_prob, check_rng

__all__ = [
    "two_spirals", "load_mnist", "load_fashion_mnist", "read_idx", "train_test_split", "scale_images",
    "data_dir", "MNIST_SHA256", "Dataset",
]

MNIST_SHA256 = "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


class Dataset(dict):
    """A dict with keys ``X_train, y_train, X_test, y_test`` (attribute access too)."""

    __getattr__ = dict.__getitem__

    def __repr__(self):
        return "Dataset(" + ", ".join(f"{k}={v.shape}" for k, v in self.items()) + ")"


def data_dir() -> Path:
    """The project's ``data/`` folder (override with the environment variable ``MINIGROW_DATA``)."""
    env = os.environ.get("MINIGROW_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "data"


def _float_dtype(name, dtype):
    """The one dtype normaliser of this module: float32/float64 given as a NumPy type, a ``np.dtype`` or its name
    (``"float32"``) → ``np.dtype``. Integer (and boolean) targets are refused: images are scaled to [0, 1] and
    coordinates are fractions, which an integer dtype would truncate (to all zeros for images)."""
    if dtype is None or isinstance(dtype, bool):
        raise TypeError(f"{name}: expected float32 or float64, got {dtype!r}")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        kind = ValueError if isinstance(dtype, str) else TypeError
        raise kind(f"{name}: expected float32 or float64 (a NumPy float type or its name), got {dtype!r}") from None
    if dt.kind in "biu":
        raise ValueError(f"{name}: expected float32 or float64, got the integer dtype {dt}; the data are scaled to "
                         f"[0, 1] and an integer dtype would truncate them (every pixel would become 0)")
    if dt not in (np.float32, np.float64):
        raise ValueError(f"{name}: expected float32 or float64, got {dt}")
    return dt


def two_spirals(n_per_class=300, r0=0.5, turns=1.0, test_fraction=0.25, rng=0, dtype=np.float64):
    """The SensLI two-spirals problem (sensli.md §6), no noise.

    For i = 0 … N−1: φ_i = 2π·turns·i/N, r_i = r0 + i/N; class 1 is (r cos φ, r sin φ) and class 0 its point
    reflection −(r cos φ, r sin φ). The 2N points are shuffled with ``rng`` and split (1 − test_fraction) /
    test_fraction: the defaults give 450 training and 150 test points.
    """
    n = check_int("n_per_class", n_per_class, lo=1)
    r0 = check_nonneg("r0", r0)
    turns = check_positive("turns", turns)
    test_fraction = check_prob("test_fraction", test_fraction, open_right=True)
    rng = check_rng("rng", rng)
    dtype = _float_dtype("dtype", dtype)
    i = np.arange(n)
    phi = 2 * np.pi * turns * i / n
    r = r0 + i / n
    p1 = np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)
    X = np.concatenate([-p1, p1])
    y = np.concatenate([np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64)])
    return train_test_split(X.astype(dtype), y, test_fraction, rng)


def train_test_split(X, y, test_fraction=0.25, rng=0):
    """Shuffle with ``rng`` and split; the first ⌊(1 − f)·n⌋ shuffled samples are the training set."""
    X = check_array("X", X)
    y = np.asarray(y)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"y: expected {X.shape[0]} labels (one per sample), got {y.shape[0]}")
    test_fraction = check_prob("test_fraction", test_fraction, open_right=True)
    rng = check_rng("rng", rng)
    perm = rng.permutation(X.shape[0])
    n_train = int(round((1 - test_fraction) * X.shape[0]))
    tr, te = perm[:n_train], perm[n_train:]
    return Dataset(X_train=X[tr], y_train=y[tr], X_test=X[te], y_test=y[te])


def scale_images(x, dtype=np.float32, flatten=True):
    """uint8 images → floats in [0, 1] (x / 255), flattened to (n, h·w) by default."""
    dt = _float_dtype("dtype", dtype)
    x = np.asarray(x)
    # x·(1/255) with the factor rounded to the target dtype first (float32: np.float32(1/255))
    out = x.astype(dt) * dt.type(1.0 / 255.0) if x.dtype == np.uint8 else x.astype(dt)
    return out.reshape(out.shape[0], -1) if flatten else out


def _subset(X, y, n, name):
    if n is None:
        return X, y
    n = check_int(name, n, lo=1, hi=X.shape[0])
    return X[:n], y[:n]


def load_mnist(path=None, n_train=None, n_test=None, dtype=np.float32, flatten=True, verify=False):
    """MNIST from the bundled ``data/mnist.npz`` (no download), scaled to [0, 1].

    ``n_train``/``n_test`` take the first n images of each split (deterministic subsets); ``verify`` checks the
    file's SHA-256 against :data:`MNIST_SHA256`.
    """
    path = Path(path) if path is not None else data_dir() / "mnist.npz"
    if not path.exists():
        raise FileNotFoundError(f"MNIST file not found at {path}; it ships in the repository's data/ folder "
                                f"(set MINIGROW_DATA to another folder that holds mnist.npz)")
    if verify:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != MNIST_SHA256:
            raise ValueError(f"{path}: SHA-256 {digest} does not match the expected {MNIST_SHA256}")
    with np.load(path, allow_pickle=False) as d:
        Xtr, ytr, Xte, yte = d["x_train"], d["y_train"], d["x_test"], d["y_test"]
    Xtr, ytr = _subset(Xtr, ytr, n_train, "n_train")
    Xte, yte = _subset(Xte, yte, n_test, "n_test")
    return Dataset(X_train=scale_images(Xtr, dtype, flatten), y_train=ytr.astype(np.int64),
                   X_test=scale_images(Xte, dtype, flatten), y_test=yte.astype(np.int64))


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Read an IDX file (the MNIST format), gzip-compressed or not, into an ndarray.

    Header: two zero bytes, a type code, the number of dimensions d, then d big-endian uint32 sizes.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (EOFError, OSError, zlib.error) as exc:      # truncated or damaged gzip stream
        raise ValueError(f"{path}: cannot decompress ({exc}); the gzip file is truncated or corrupt") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02x}")
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dt = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(shape)) * dt.itemsize
    body = raw[4 + 4 * ndim:]
    if len(body) != expected:
        raise ValueError(f"{path}: expected {expected} data bytes for shape {shape}, got {len(body)} "
                         f"(truncated or corrupt file)")
    return np.frombuffer(body, dtype=dt).reshape(shape).astype(dt.newbyteorder("="))


def load_fashion_mnist(folder=FASHION_DIR, n_train=None, n_test=None, dtype=np.float32, flatten=True):
    """Fashion-MNIST from gzip IDX files (Debian package ``dataset-fashion-mnist`` installs them in
    /usr/share/datasets/fashion-mnist/); any folder with the four standard MNIST-format file names works."""
    folder = Path(folder)
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte"]
    arrays = []
    for name in names:
        cands = [folder / (name + ".gz"), folder / name]
        found = next((c for c in cands if c.exists()), None)
        if found is None:
            raise FileNotFoundError(f"{folder / name}[.gz] not found; install the Debian package "
                                    f"'dataset-fashion-mnist' or pass folder=… with the IDX files")
        arrays.append(read_idx(found))
    Xtr, ytr = _subset(arrays[0], arrays[1], n_train, "n_train")
    Xte, yte = _subset(arrays[2], arrays[3], n_test, "n_test")
    return Dataset(X_train=scale_images(Xtr, dtype, flatten), y_train=ytr.astype(np.int64),
                   X_test=scale_images(Xte, dtype, flatten), y_test=yte.astype(np.int64))
