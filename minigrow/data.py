"""Data: the two-spirals problem, MNIST from the bundled ``mnist.npz``, gzip IDX files (Fashion-MNIST),
splits and scaling. All randomness through an explicit Generator.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .validate import (check_array, check_bool, check_choice, check_int, check_nonneg, check_path, check_positive,
                       check_prob, check_rng)

__all__ = [
    "two_spirals", "load_mnist", "load_fashion_mnist", "read_idx", "train_test_split", "scale_images",
    "data_dir", "MNIST_SHA256", "Dataset", "LAYOUTS",
]

MNIST_SHA256 = "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


class Dataset(dict):
    """A dict with keys ``X_train, y_train, X_test, y_test`` (attribute access too)."""

    __getattr__ = dict.__getitem__

    def __repr__(self):
        return "Dataset(" + ", ".join(f"{k}={v.shape}" for k, v in self.items()) + ")"


# the bundled mnist.npz ships inside the package (setup.cfg [options.package_data]), so a non-editable install
# finds it too; its provenance is in the repository's data/README.md
_BUNDLED_DIR = Path(__file__).resolve().parent / "_data"


def _data_folder(explicit, default):
    """(folder, where it came from): ``explicit`` if given, else $MINIGROW_DATA if set, else ``default``."""
    if explicit is not None:
        folder = check_path("data_dir", explicit)
        if folder.is_file():
            raise ValueError(f"data_dir: expected a folder, got the file {folder} (pass the folder that holds it)")
        return folder, "the data_dir argument"
    env = os.environ.get("MINIGROW_DATA")
    if env:
        return Path(env), f"MINIGROW_DATA={env}"
    return Path(default), "the default"


def data_dir(path=None) -> Path:
    """The folder :func:`load_mnist` reads ``mnist.npz`` from: ``path`` if given, else the environment variable
    ``MINIGROW_DATA`` if set, else the folder of the bundled file."""
    return _data_folder(path, _BUNDLED_DIR)[0]


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
        raise ValueError(f"{name}: expected float32 or float64, got the integer dtype {dt}; it would truncate the "
                         f"data (images scaled to [0, 1] would become all zeros)")
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


LAYOUTS = ("flat", "nchw", "nhw")


def _layout(layout, flatten):
    """Resolve ``layout`` (the option) and ``flatten`` (its older spelling: True = "flat", False = "nhw")."""
    if flatten is not None:
        flatten = check_bool("flatten", flatten)
    if layout is None:
        return "nhw" if flatten is False else "flat"
    layout = check_choice("layout", layout, LAYOUTS)
    if flatten is not None and flatten != (layout == "flat"):
        raise ValueError(f"flatten: flatten={flatten} contradicts layout={layout!r}; pass layout alone")
    return layout


def scale_images(x, dtype=np.float32, flatten=None, layout=None):
    """uint8 images (n, h, w) → floats in [0, 1] (x / 255), arranged by ``layout``:

    ``"flat"`` (default) (n, h·w) rows for the MLPs; ``"nchw"`` (n, 1, h, w) batch-first image tensors with one
    channel; ``"nhw"`` (n, h, w) as stored. ``flatten=True/False`` is the older spelling of "flat"/"nhw".
    The values are the same in every layout (only the shape differs).
    """
    layout = _layout(layout, flatten)
    dt = _float_dtype("dtype", dtype)
    x = np.asarray(x)
    if layout != "flat" and x.ndim != 3:
        raise ValueError(f"x: layout={layout!r} needs images of shape (n, h, w), got shape {x.shape}")
    # x·(1/255) with the factor rounded to the target dtype first (float32: np.float32(1/255))
    out = x.astype(dt) * dt.type(1.0 / 255.0) if x.dtype == np.uint8 else x.astype(dt)
    if layout == "flat":
        return out.reshape(out.shape[0], -1)
    return out[:, None, :, :] if layout == "nchw" else out


def _subset(X, y, n, name):
    if n is None:
        return X, y
    n = check_int(name, n, lo=1, hi=X.shape[0])
    return X[:n], y[:n]


N_CLASSES = 10          # MNIST and Fashion-MNIST: labels 0 … 9


def _check_split(X, y, xsrc, ysrc, n_classes=N_CLASSES):
    """What a loader read must be a set of images with one label each, every label one of the classes.

    ``xsrc``/``ysrc`` say where the arrays came from (a file, or ``file[key]``) so the error can name them.
    """
    if X.ndim != 3 or min(X.shape) < 1:
        raise ValueError(f"{xsrc}: expected images of shape (n, rows, cols) with n, rows, cols >= 1, "
                         f"got shape {X.shape}")
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"{ysrc}: expected a 1-d array of integer labels, got shape {y.shape} and dtype {y.dtype}")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"{xsrc} holds {X.shape[0]} images but {ysrc} holds {y.shape[0]} labels; the counts must "
                         f"match (mismatched or truncated files?)")
    bad = np.flatnonzero((y < 0) | (y >= n_classes))
    if bad.size:
        raise ValueError(f"{ysrc}: label {int(y[bad[0]])} at index {int(bad[0])} is outside the {n_classes} classes "
                         f"0 … {n_classes - 1} ({bad.size} such label(s); wrong or corrupt file?)")


def _check_same_image_size(Xtr, Xte, xtr_src, xte_src):
    if Xtr.shape[1:] != Xte.shape[1:]:
        raise ValueError(f"{xte_src}: test images are {Xte.shape[1]}×{Xte.shape[2]} but training images "
                         f"({xtr_src}) are {Xtr.shape[1]}×{Xtr.shape[2]}")


_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _read_npz(path, keys=_NPZ_KEYS):
    """The arrays ``keys`` of a .npz file, each .npy header checked against the stored member size before
    anything is allocated (a corrupt header announcing terabytes is refused, not attempted)."""
    import zipfile
    from numpy.lib import format as npy
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            for key in keys:
                if key + ".npy" not in names:
                    have = sorted(n[:-4] for n in names if n.endswith(".npy"))
                    raise ValueError(f"{path}: no array {key!r} (the file holds {have}); expected the arrays "
                                     f"{list(keys)}")
                info = zf.getinfo(key + ".npy")
                with zf.open(info) as fh:
                    try:
                        version = npy.read_magic(fh)
                        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                        shape, _, dt = read_header(fh)
                    except ValueError as exc:                   # NumPy's message names neither file nor array
                        raise ValueError(f"{path}[{key}]: not a valid .npy array ({exc})") from None
                    if dt.hasobject:
                        raise ValueError(f"{path}[{key}]: holds Python objects (dtype {dt}); expected numbers")
                    announced = math.prod(shape) * dt.itemsize
                    stored = info.file_size - fh.tell()
                if announced != stored:
                    raise ValueError(f"{path}[{key}]: the header announces shape {shape} ({announced} bytes) but "
                                     f"the file stores {stored} bytes; corrupt file")
            with np.load(path, allow_pickle=False) as d:
                return [d[key] for key in keys]
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc}); the file is truncated or corrupt") from None


def load_mnist(path=None, n_train=None, n_test=None, dtype=np.float32, flatten=None, verify=False, layout=None,
               data_dir=None):
    """MNIST from ``mnist.npz`` (the bundled copy by default, no download), scaled to [0, 1].

    The file: ``path`` if given, else ``mnist.npz`` in ``data_dir`` if given, else in $MINIGROW_DATA if set, else
    the copy bundled with the package (see :func:`data_dir`).

    ``n_train``/``n_test`` take the first n images of each split (deterministic subsets); ``verify`` checks the
    file's SHA-256 against :data:`MNIST_SHA256`. ``layout``: ``"flat"`` (default) X of shape (n, 784);
    ``"nchw"`` batch-first image tensors (n, 1, 28, 28); ``"nhw"`` (n, 28, 28) — see :func:`scale_images`
    (``flatten=False`` is the older spelling of ``"nhw"``). The file must hold ``x_train, y_train, x_test,
    y_test`` with one label in 0 … 9 per image, else ValueError naming the file.
    """
    layout, dtype = _layout(layout, flatten), _float_dtype("dtype", dtype)       # bad options fail before reading
    if path is not None and data_dir is not None:
        raise ValueError(f"path: give either path (the file, got {path}) or data_dir (its folder, got {data_dir}), "
                         f"not both")
    if path is not None:
        path, where = check_path("path", path), "the path argument"
    else:
        folder, where = _data_folder(data_dir, _BUNDLED_DIR)
        path = folder / "mnist.npz"
    if not path.exists():
        raise FileNotFoundError(f"MNIST file not found at {path} (from {where}); a copy ships inside the minigrow "
                                f"package — pass data_dir=… (CLI: --data-dir) or set MINIGROW_DATA to a folder "
                                f"that holds mnist.npz")
    if verify:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != MNIST_SHA256:
            raise ValueError(f"{path}: SHA-256 {digest} does not match the expected {MNIST_SHA256}")
    Xtr, ytr, Xte, yte = _read_npz(path)
    _check_split(Xtr, ytr, f"{path}[x_train]", f"{path}[y_train]")
    _check_split(Xte, yte, f"{path}[x_test]", f"{path}[y_test]")
    _check_same_image_size(Xtr, Xte, f"{path}[x_train]", f"{path}[x_test]")
    Xtr, ytr = _subset(Xtr, ytr, n_train, "n_train")
    Xte, yte = _subset(Xte, yte, n_test, "n_test")
    return Dataset(X_train=scale_images(Xtr, dtype, layout=layout), y_train=ytr.astype(np.int64),
                   X_test=scale_images(Xte, dtype, layout=layout), y_test=yte.astype(np.int64))


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_MAX_BYTES = 1 << 32      # 4 GiB: read_idx refuses a header announcing more (MNIST's largest file: 47 MB)
_GZIP_MAX_RATIO = 1100       # deflate expands by at most ~1032 : 1, so a gzip file of s bytes holds < 1100·s
_CHUNK = 1 << 24             # read in 16 MiB pieces (bounded temporary memory)


def read_idx(path, max_bytes=IDX_MAX_BYTES):
    """Read an IDX file (the MNIST format), gzip-compressed or not, into an ndarray.

    Header: two zero bytes, a type code, the number of dimensions d, then d big-endian uint32 sizes. The size
    the header announces is checked before anything is allocated: more than ``max_bytes``, more than the file
    (or, gzip-compressed, its maximal expansion) can hold, or — plain — not exactly the rest of the file →
    ValueError naming the file. Truncated, over-long or damaged (gzip) files → ValueError naming the file.
    """
    path = check_path("path", path)
    max_bytes = check_int("max_bytes", max_bytes, lo=1)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    if not gz:
        with open(path, "rb") as fh:
            return _read_idx_stream(fh, path, size, False, max_bytes)
    try:
        with gzip.open(path, "rb") as fh:
            return _read_idx_stream(fh, path, size, True, max_bytes)
    except (EOFError, OSError, zlib.error) as exc:      # truncated or damaged gzip stream (BadGzipFile: OSError)
        raise ValueError(f"{path}: cannot decompress ({exc}); the gzip file is truncated or corrupt") from None


def _read_idx_stream(fh, path, size, gz, max_bytes):
    head = fh.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    code, ndim = head[2], head[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02x}")
    dims = fh.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", dims)
    dt = np.dtype(_IDX_DTYPES[code])
    expected = math.prod(shape) * dt.itemsize            # exact (Python ints): no overflow for absurd headers
    # refuse before allocating: the header's promise must fit the limit and the file
    if expected > max_bytes:
        raise ValueError(f"{path}: the IDX header announces shape {shape}, {expected} bytes of data, more than "
                         f"max_bytes={max_bytes}; corrupt header (or raise max_bytes)")
    if gz and expected > _GZIP_MAX_RATIO * size:
        raise ValueError(f"{path}: the IDX header announces shape {shape}, {expected} bytes of data, more than a "
                         f"{size}-byte gzip file can hold; corrupt header")
    if not gz and expected != size - 4 - 4 * ndim:
        raise ValueError(f"{path}: expected {expected} data bytes for shape {shape}, got {size - 4 - 4 * ndim} "
                         f"(truncated or corrupt file)")
    buf = np.empty(expected, dtype=np.uint8)
    view, got = memoryview(buf), 0
    while got < expected:
        n = fh.readinto(view[got:got + _CHUNK])
        if not n:
            break
        got += n
    extra = 0                                           # read to the end: counts trailing bytes, checks the CRC
    while True:
        n = len(fh.read(_CHUNK))
        if not n:
            break
        extra += n
    if got != expected or extra:
        raise ValueError(f"{path}: expected {expected} data bytes for shape {shape}, got {got + extra} "
                         f"(truncated or corrupt file)")
    return buf.view(dt).reshape(shape).astype(dt.newbyteorder("="), copy=False)


_FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                  "t10k-labels-idx1-ubyte")


def load_fashion_mnist(data_dir=None, n_train=None, n_test=None, dtype=np.float32, flatten=None, layout=None):
    """Fashion-MNIST from the four MNIST-format IDX files (gzip-compressed or not) in a folder: ``data_dir`` if
    given, else $MINIGROW_DATA if set, else :data:`FASHION_DIR` = /usr/share/datasets/fashion-mnist/, where the
    Debian package ``dataset-fashion-mnist`` installs them.

    Images and labels are checked: matching counts, labels in 0 … 9, equal image sizes (else ValueError naming
    the file); see :func:`read_idx` for the checks on each file. ``layout`` as in :func:`load_mnist`.
    """
    layout, dtype = _layout(layout, flatten), _float_dtype("dtype", dtype)       # bad options fail before reading
    folder, where = _data_folder(data_dir, FASHION_DIR)
    arrays, files = [], []
    for name in _FASHION_FILES:
        cands = [folder / (name + ".gz"), folder / name]
        found = next((c for c in cands if c.exists()), None)
        if found is None:
            raise FileNotFoundError(f"Fashion-MNIST: {folder / name}[.gz] not found (folder from {where}); install "
                                    f"the Debian package 'dataset-fashion-mnist' (files in {FASHION_DIR}/) or pass "
                                    f"data_dir=… (CLI: --data-dir) a folder with the four IDX files")
        arrays.append(read_idx(found))
        files.append(found)
    _check_split(arrays[0], arrays[1], files[0], files[1])
    _check_split(arrays[2], arrays[3], files[2], files[3])
    _check_same_image_size(arrays[0], arrays[2], files[0], files[2])
    Xtr, ytr = _subset(arrays[0], arrays[1], n_train, "n_train")
    Xte, yte = _subset(arrays[2], arrays[3], n_test, "n_test")
    return Dataset(X_train=scale_images(Xtr, dtype, layout=layout), y_train=ytr.astype(np.int64),
                   X_test=scale_images(Xte, dtype, layout=layout), y_test=yte.astype(np.int64))
