"""Data: two spirals exactly as in sensli.md §6, MNIST loader checks, the IDX reader, Fashion-MNIST, splits,
bad inputs."""
import contextlib
import gzip
import json
import os
import re
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrow.data
from minigrow import strategies as mst
from minigrow.io import load
from minigrow.data import (FASHION_DIR, MNIST_SHA256, data_dir, load_fashion_mnist, load_mnist, read_idx, scale_images,
                           train_test_split, two_spirals)
from minigrow.optim import Adam
from minigrow.network import mlp
from minigrow.train import Trainer

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ two spirals (sensli.md §6)
def spirals_by_the_formula(seed, N=300, r0=0.5):
    """Independent re-computation: for i = 0..N−1, φ = 2πi/N, r = r0 + i/N; class 1 = (r cos φ, r sin φ), class 0
    its point reflection; the 2N points shuffled and split 75/25."""
    pts, labels = [], []
    for cls in (0, 1):
        sign = 1.0 if cls == 1 else -1.0
        for i in range(N):
            phi = 2 * np.pi * i / N
            r = r0 + i / N
            pts.append((sign * r * np.cos(phi), sign * r * np.sin(phi)))
            labels.append(cls)
    X, y = np.array(pts), np.array(labels)
    perm = np.random.default_rng(seed).permutation(2 * N)
    X, y = X[perm], y[perm]
    return X[:450], y[:450], X[450:], y[450:]


@pytest.mark.parametrize("seed", [0, 1, 17])
def test_two_spirals_match_the_method_note(seed):
    d = two_spirals(rng=seed)
    Xtr, ytr, Xte, yte = spirals_by_the_formula(seed)
    assert d.X_train.shape == (450, 2) and d.X_test.shape == (150, 2)
    np.testing.assert_allclose(d.X_train, Xtr, rtol=0, atol=1e-15)
    np.testing.assert_allclose(d.X_test, Xte, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(d.y_train, ytr)
    np.testing.assert_array_equal(d.y_test, yte)


def test_two_spirals_geometry():
    d = two_spirals(rng=0)
    X = np.concatenate([d.X_train, d.X_test])
    y = np.concatenate([d.y_train, d.y_test])
    assert np.bincount(y).tolist() == [300, 300]
    r = np.hypot(X[:, 0], X[:, 1])
    assert r.min() == pytest.approx(0.5) and r.max() == pytest.approx(0.5 + 299 / 300)
    # class 0 is the point reflection of class 1: the sets {x} and {−x} coincide
    a = np.sort(np.round(X[y == 1], 12), axis=0)
    b = np.sort(np.round(-X[y == 0], 12), axis=0)
    np.testing.assert_array_equal(a, b)
    assert two_spirals(rng=0, dtype=np.float32).X_train.dtype == np.float32


@given(n=st.integers(1, 50), frac=st.floats(0.1, 0.9), seed=mst.seeds())
def test_train_test_split_is_a_partition(n, frac, seed):
    X = np.arange(2 * n, dtype=float).reshape(n, 2)
    y = np.arange(n)
    d = train_test_split(X, y, frac, rng=seed)
    assert len(d.y_train) == int(round((1 - frac) * n))
    np.testing.assert_array_equal(np.sort(np.concatenate([d.y_train, d.y_test])), y)
    np.testing.assert_array_equal(d.X_train[:, 0], 2 * d.y_train)


def test_two_spirals_bad_arguments():
    with pytest.raises(ValueError, match="n_per_class: expected an integer >= 1"):
        two_spirals(n_per_class=0)
    with pytest.raises(ValueError, match=r"test_fraction: expected a number in \[0, 1\)"):
        two_spirals(test_fraction=1.0)
    with pytest.raises(TypeError, match="rng"):
        two_spirals(rng="zero")


# ------------------------------------------------------------------ MNIST
@pytest.fixture(scope="module")
def mnist():
    return load_mnist(verify=True)


def test_mnist_shapes_and_dtypes(mnist):
    assert mnist.X_train.shape == (60000, 784) and mnist.X_test.shape == (10000, 784)
    assert mnist.y_train.shape == (60000,) and mnist.y_test.shape == (10000,)
    assert mnist.X_train.dtype == np.float32 and mnist.y_train.dtype == np.int64
    assert mnist.X_train.min() == 0.0 and mnist.X_train.max() == 1.0


def test_mnist_provenance_checks(mnist):
    assert np.bincount(mnist.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert mnist.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert float(mnist.X_train.mean(dtype=np.float64)) == pytest.approx(0.1307, abs=5e-5)
    assert np.bincount(mnist.y_test).sum() == 10000


def test_mnist_checksum_mismatch_is_refused(tmp_path):
    fake = tmp_path / "mnist.npz"
    np.savez(fake, x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.zeros(2, np.uint8),
             x_test=np.zeros((1, 28, 28), np.uint8), y_test=np.zeros(1, np.uint8))
    with pytest.raises(ValueError, match=f"does not match the expected {MNIST_SHA256}"):
        load_mnist(fake, verify=True)
    d = load_mnist(fake)                      # without verify it loads
    assert d.X_train.shape == (2, 784)


def test_mnist_subsets_float64_and_unflattened():
    d = load_mnist(n_train=100, n_test=10, dtype=np.float64, flatten=False)
    assert d.X_train.shape == (100, 28, 28) and d.X_train.dtype == np.float64
    assert d.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    with pytest.raises(ValueError, match="n_train: expected an integer <= 60000"):
        load_mnist(n_train=60001)


def test_mnist_nchw_images_are_the_flat_rows_reshaped():
    """layout="nchw" gives batch-first (N, 1, 28, 28) float images with exactly the default's values."""
    flat = load_mnist(n_train=300, n_test=40)
    img = load_mnist(n_train=300, n_test=40, layout="nchw")
    assert img.X_train.shape == (300, 1, 28, 28) and img.X_test.shape == (40, 1, 28, 28)
    assert img.X_train.dtype == np.float32 and img.X_train.flags.c_contiguous
    np.testing.assert_array_equal(img.X_train.reshape(300, -1), flat.X_train)
    np.testing.assert_array_equal(img.X_test.reshape(40, -1), flat.X_test)
    np.testing.assert_array_equal(img.y_train, flat.y_train)
    # pixel (row 5, col 14) of image 0 is entry 5·28 + 14 of its flat row: rows are row-major images
    assert img.X_train[0, 0, 5, 14] == flat.X_train[0, 5 * 28 + 14]
    nhw = load_mnist(n_train=300, n_test=40, layout="nhw", dtype="float64")
    assert nhw.X_train.shape == (300, 28, 28) and nhw.X_train.dtype == np.float64
    # the default and the explicit spellings of "flat" are the same bits
    for kw in (dict(layout="flat"), dict(flatten=True), dict(flatten=True, layout="flat")):
        np.testing.assert_array_equal(load_mnist(n_train=300, n_test=40, **kw).X_train, flat.X_train)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(layout="NCHW"), ValueError, r"layout: expected one of \['flat', 'nchw', 'nhw'\], got 'NCHW'"),
    (dict(layout="nchw", flatten=True), ValueError, r"flatten: flatten=True contradicts layout='nchw'"),
    (dict(layout="flat", flatten=False), ValueError, r"flatten: flatten=False contradicts layout='flat'"),
    (dict(flatten=0), TypeError, r"flatten: expected True or False"),
])
def test_layout_bad_arguments(kw, exc, match):
    with pytest.raises(exc, match=match):
        load_mnist(n_train=5, n_test=5, **kw)
    with pytest.raises(exc, match=match):
        scale_images(np.zeros((2, 3, 3), np.uint8), **kw)


def test_scale_images_layouts():
    x = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3) * 20
    flat = scale_images(x)
    assert flat.shape == (2, 6)
    np.testing.assert_array_equal(scale_images(x, layout="nchw"), flat.reshape(2, 1, 2, 3))
    np.testing.assert_array_equal(scale_images(x, layout="nhw"), flat.reshape(2, 2, 3))
    with pytest.raises(ValueError, match=r"x: layout='nchw' needs images of shape \(n, h, w\), got shape \(2, 6\)"):
        scale_images(flat, layout="nchw")


def test_mnist_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST file not found"):
        load_mnist(tmp_path / "nope.npz")


@pytest.mark.parametrize("dtype", [np.float32, np.dtype(np.float32), "float32", "f4", np.float64, np.dtype("float64"),
                                   "float64"])
def test_mnist_dtype_spellings(dtype):
    """A NumPy type, a np.dtype and a name all work (np.dtype(...) is what the CLI passes) and give the same bits."""
    d = load_mnist(n_train=50, n_test=5, dtype=dtype)
    assert d.X_train.dtype == np.dtype(dtype) and d.X_train.max() == 1.0
    # x · fl(1/255) in the target dtype, exactly (the same bits whichever spelling)
    raw = np.load(data_dir() / "mnist.npz")["x_train"][:50].reshape(50, -1)
    np.testing.assert_array_equal(d.X_train, raw.astype(dtype) * np.dtype(dtype).type(1 / 255))


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, int, "int32", np.dtype("int16"), bool])
def test_integer_dtypes_are_refused(dtype):
    """An integer target would truncate every scaled pixel to 0 — refused, naming the argument."""
    with pytest.raises(ValueError, match=r"dtype: expected float32 or float64, got the integer dtype"):
        load_mnist(n_train=5, n_test=5, dtype=dtype)
    with pytest.raises(ValueError, match=r"dtype: .*integer dtype"):
        scale_images(np.zeros((1, 2, 2), np.uint8), dtype=dtype)
    with pytest.raises(ValueError, match=r"dtype: .*integer dtype"):
        two_spirals(dtype=dtype)


@pytest.mark.parametrize("dtype, exc, match", [
    ("floot32", ValueError, r"dtype: expected float32 or float64 \(a NumPy float type or its name\), got 'floot32'"),
    ("float16", ValueError, r"dtype: expected float32 or float64, got float16"),
    (np.complex64, ValueError, r"dtype: expected float32 or float64, got complex64"),
    (None, TypeError, r"dtype: expected float32 or float64, got None"),
    (3.5, TypeError, r"dtype: expected float32 or float64"),
])
def test_bad_dtypes_name_the_argument(dtype, exc, match):
    with pytest.raises(exc, match=match):
        load_mnist(n_train=5, n_test=5, dtype=dtype)


def test_scale_images():
    x = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    out = scale_images(x)
    assert out.dtype == np.float32 and out.shape == (1, 4)
    np.testing.assert_allclose(out, [[0, 1, 0.2, 0.4]], rtol=1e-6)


# ------------------------------------------------------------------ the CLI on MNIST, end to end (a subprocess)
def run_cli(*argv, env_extra=None, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "minigrow", *argv], cwd=cwd or ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cli_train_on_mnist(tmp_path, dtype):
    out = tmp_path / "run"
    r = run_cli("train", "--data", "mnist", "--n-train", "500", "--n-test", "200", "--epochs", "1", "--dtype", dtype,
                "--out", str(out), "--no-plots", "--no-progress")
    assert r.returncode == 0, r.stderr
    hist = json.loads((out / "history.json").read_text())
    assert [e["epoch"] for e in hist["epochs"]] == [1]
    assert len(hist["step_loss"]) == int(np.ceil(500 / 128))
    model = load(out / "model.npz")["model"]
    assert model.layers[0].params["W"].shape[1] == 784 and model.dtype == np.dtype(dtype)
    d = load_mnist(n_train=500, n_test=200, dtype=dtype)
    acc = float((model.predict(d.X_test) == d.y_test).mean())
    assert acc == pytest.approx(hist["epochs"][-1]["test_acc"], abs=1e-6)    # trained on the same data
    assert "final:" in r.stdout


def test_cli_insert_on_mnist(tmp_path):
    out = tmp_path / "ins"
    r = run_cli("insert", "--data", "mnist", "--n-train", "300", "--n-test", "100", "--hidden", "8", "--epochs", "1,1",
                "--out", str(out), "--no-plots", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "history.json").read_text())
    model = load(out / "model.npz")["model"]
    dense = [layer for layer in model.layers if "W" in layer.params]
    assert dense[0].params["W"].shape == (8, 784) and len(dense) == 3          # one layer inserted
    assert "inserted at" in r.stdout


def test_cli_prune_on_mnist(tmp_path):
    out = tmp_path / "pr"
    r = run_cli("prune", "--data", "mnist", "--n-train", "300", "--n-test", "100", "--hidden", "16,8", "--epochs", "1",
                "--out", str(out), "--no-plots", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "history.json").read_text())
    for name in ("model.npz", "gated_model.npz"):
        assert (out / name).stat().st_size > 0
    assert load(out / "model.npz")["model"].layers[0].params["W"].shape[1] == 784


# ------------------------------------------------------------------ IDX files
def write_idx(path, arr, code, gz):
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    raw = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if gz else open
    with opener(path, "wb") as fh:
        fh.write(raw)
    return raw


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dtype, code", [(np.uint8, 0x08), (np.int8, 0x09), (np.int16, 0x0B), (np.int32, 0x0C),
                                         (np.float32, 0x0D), (np.float64, 0x0E)])
def test_idx_round_trip(tmp_path, gz, dtype, code):
    arr = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4)
    arr = (arr % 256 if dtype == np.uint8 else arr).astype(dtype)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, arr, code, gz)
    out = read_idx(path)
    assert out.shape == arr.shape and out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_truncated_and_corrupt(tmp_path, gz):
    arr = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    raw = write_idx(tmp_path / "ok", arr, 0x08, gz=False)
    cases = {
        "short_body": (raw[:-7], r"expected 60 data bytes for shape \(3, 4, 5\), got 53"),
        "long_body": (raw + b"\x00", "expected 60 data bytes"),
        "bad_magic": (b"\x01\x02" + raw[2:], "not an IDX file"),
        "bad_type": (raw[:2] + b"\x07" + raw[3:], "unknown IDX type code 0x07"),
        "short_header": (raw[:9], "truncated IDX header"),
        "empty": (b"", "not an IDX file"),
    }
    for name, (content, match) in cases.items():
        path = tmp_path / name
        if gz:
            with gzip.open(path, "wb") as fh:
                fh.write(content)
        else:
            path.write_bytes(content)
        with pytest.raises(ValueError, match=match):
            read_idx(path)


def test_idx_damaged_gzip_stream(tmp_path):
    path = tmp_path / "t.gz"
    write_idx(path, np.arange(1000, dtype=np.uint8).reshape(10, 100) % 7, 0x08, gz=True)
    data = path.read_bytes()
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "flip.gz").write_bytes(data[:12] + bytes(b ^ 0xFF for b in data[12:30]) + data[30:])
    with pytest.raises(ValueError):
        read_idx(tmp_path / "flip.gz")


def test_idx_damaged_gzip_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(path, np.zeros((50, 28, 28), np.uint8) + 3, 0x08, gz=True)
    data = path.read_bytes()
    path.write_bytes(data[:-10])                      # the CRC/size trailer cut off
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: cannot decompress .* truncated or corrupt"):
        read_idx(path)


@contextlib.contextmanager
def peak_allocation():
    """Yields a function giving the peak bytes allocated (Python and NumPy) inside the block."""
    tracemalloc.start()
    try:
        yield lambda: tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("shape, match", [
    ((4294967295, 4294967295, 4294967295), r"announces shape \(4294967295, 4294967295, 4294967295\), "
                                           r"\d+ bytes of data, more than max_bytes=4294967296"),
    ((60000, 1000, 28), None),                        # 1.7 GB, under max_bytes, but not what the file holds
])
def test_idx_absurd_header_refused_before_allocating(tmp_path, gz, shape, match):
    path = tmp_path / "big"
    header = bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    content = header + bytes(100)
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(content)
    else:
        path.write_bytes(content)
    want = match or (r"more than a \d+-byte gzip file can hold" if gz else r"expected 1680000000 data bytes .* got 100")
    with peak_allocation() as peak, pytest.raises(ValueError, match=want):
        read_idx(path)
    assert peak() < 10 ** 6         # refused before allocating (NumPy reports its allocations to tracemalloc)
    with pytest.raises(ValueError, match=r"max_bytes=1000"):
        read_idx(path, max_bytes=1000)


def write_fashion(folder, n_train=5, n_test=3, labels=None, test_size=28, rng=0):
    """The four Fashion-MNIST files (train images gz, train labels plain, test both gz) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(rng)
    imgs = rng.integers(0, 256, (max(n_train, n_test), 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5, 9, 2, 6][:max(n_train, n_test)] if labels is None else labels, np.uint8)
    write_idx(folder / "train-images-idx3-ubyte.gz", imgs[:n_train], 0x08, gz=True)
    write_idx(folder / "train-labels-idx1-ubyte", labels[:n_train], 0x08, gz=False)
    timgs = imgs[:n_test] if test_size == 28 else np.zeros((n_test, test_size, test_size), np.uint8)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", timgs, 0x08, gz=True)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels[:n_test], 0x08, gz=True)
    return imgs, labels


def test_fashion_files_must_agree(tmp_path):
    # more images than labels
    write_fashion(tmp_path / "a")
    write_idx(tmp_path / "a" / "train-labels-idx1-ubyte", np.array([1, 2, 3, 4], np.uint8), 0x08, gz=False)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz holds 5 images but .*train-labels-idx1-ubyte "
                                         r"holds 4 labels"):
        load_fashion_mnist(tmp_path / "a")
    # a label beyond the 10 classes
    write_fashion(tmp_path / "b", labels=[3, 1, 4, 10, 5])
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte: label 10 at index 3 is outside the 10 classes"):
        load_fashion_mnist(tmp_path / "b", n_train=2)           # checked on the whole file, not just the subset
    # test images of another size
    write_fashion(tmp_path / "c", test_size=14)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz: test images are 14×14 but training images"):
        load_fashion_mnist(tmp_path / "c")
    # labels stored as a 2-d array
    write_fashion(tmp_path / "d")
    write_idx(tmp_path / "d" / "train-labels-idx1-ubyte", np.zeros((5, 2), np.uint8), 0x08, gz=False)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte: expected a 1-d array of integer labels"):
        load_fashion_mnist(tmp_path / "d")


def fake_mnist(path, **override):
    arrays = dict(x_train=np.zeros((4, 28, 28), np.uint8), y_train=np.array([0, 1, 2, 9], np.uint8),
                  x_test=np.zeros((2, 28, 28), np.uint8), y_test=np.array([3, 4], np.uint8))
    arrays.update(override)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.mark.parametrize("override, match", [
    (dict(y_train=np.array([0, 1, 2], np.uint8)), r"mnist.npz\[x_train\] holds 4 images but .*mnist.npz\[y_train\] "
                                                  r"holds 3 labels"),
    (dict(y_test=np.array([3, 12], np.uint8)), r"mnist.npz\[y_test\]: label 12 at index 1 is outside the 10 classes"),
    (dict(y_train=np.array([0, 1, -1, 2])), r"\[y_train\]: label -1 at index 2"),
    (dict(y_train=np.array([0.0, 1, 2, 3])), r"\[y_train\]: expected a 1-d array of integer labels"),
    (dict(x_test=np.zeros((2, 784), np.uint8)), r"\[x_test\]: expected images of shape \(n, rows, cols\)"),
    (dict(x_test=np.zeros((2, 20, 20), np.uint8)), r"test images are 20×20 but training images"),
    (dict(y_test=None), r"mnist.npz: no array 'y_test' \(the file holds \['x_test', 'x_train', 'y_train'\]\)"),
])
def test_mnist_file_contents_are_checked(tmp_path, override, match):
    with pytest.raises(ValueError, match=match):
        load_mnist(fake_mnist(tmp_path / "mnist.npz", **override))


def test_mnist_absurd_npy_header_and_corrupt_zip(tmp_path):
    import zipfile
    from numpy.lib import format as npy
    path = fake_mnist(tmp_path / "mnist.npz")
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        for name in src.namelist():
            if name == "x_train.npy":
                import io
                buf = io.BytesIO()
                npy.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": (10 ** 7, 10 ** 6)})
                dst.writestr(name, buf.getvalue() + bytes(64))
            else:
                dst.writestr(name, src.read(name))
    with peak_allocation() as peak, pytest.raises(ValueError, match=r"bad.npz\[x_train\]: the header announces shape "
                                                             r"\(10000000, 1000000\) \(10000000000000 bytes\) but "
                                                             r"the file stores 64 bytes"):
        load_mnist(bad)
    assert peak() < 10 ** 7
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"cut.npz: not a readable .npz file"):
        load_mnist(cut)
    junk = tmp_path / "junk.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(junk, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, b"not an npy header at all" if name == "y_test.npy" else src.read(name))
    with pytest.raises(ValueError, match=r"junk.npz\[y_test\]: not a valid .npy array"):
        load_mnist(junk)
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match=r"text.npz: not a readable .npz file"):
        load_mnist(tmp_path / "text.npz")


def test_fashion_from_any_folder(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    for prefix, n in (("train", 5), ("t10k", 3)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", imgs[:n], 0x08, gz=True)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels[:n], 0x08, gz=False)
    d = load_fashion_mnist(tmp_path)
    assert d.X_train.shape == (5, 784) and d.X_test.shape == (3, 784)
    np.testing.assert_allclose(d.X_train[1], imgs[1].ravel() / 255.0, rtol=1e-6)
    assert d.y_test.tolist() == [3, 1, 4]
    img = load_fashion_mnist(tmp_path, layout="nchw")
    assert img.X_train.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(img.X_train.reshape(5, -1), d.X_train)
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "empty")


FASHION_INSTALLED = all((Path(FASHION_DIR) / f"{n}.gz").exists() for n in (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
needs_fashion = pytest.mark.skipif(not FASHION_INSTALLED, reason=f"Fashion-MNIST not installed in {FASHION_DIR} "
                                   f"(apt-get install dataset-fashion-mnist)")


@needs_fashion
def test_fashion_mnist_installed(monkeypatch):
    monkeypatch.delenv("MINIGROW_DATA", raising=False)          # the default folder, whatever the environment
    d = load_fashion_mnist(n_test=1000)
    assert d.X_train.shape == (60000, 784) and d.X_test.shape == (1000, 784)
    assert d.X_train.dtype == np.float32 and d.X_train.min() == 0.0 and d.X_train.max() == 1.0
    # provenance: the published Fashion-MNIST facts (balanced classes; first labels 9 ankle boot, 0 T-shirt …;
    # mean pixel 0.2860)
    assert np.bincount(d.y_train).tolist() == [6000] * 10
    assert d.y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert d.y_test[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert float(d.X_train.mean(dtype=np.float64)) == pytest.approx(0.2860, abs=5e-5)
    img = load_fashion_mnist(data_dir=FASHION_DIR, n_train=100, n_test=10, layout="nchw")
    assert img.X_train.shape == (100, 1, 28, 28)
    np.testing.assert_array_equal(img.X_train.reshape(100, -1), d.X_train[:100])


@needs_fashion
def test_cli_train_on_installed_fashion(tmp_path):
    out = tmp_path / "f"
    r = run_cli("train", "--data", "fashion", "--n-train", "500", "--n-test", "200", "--epochs", "1",
                "--out", str(out), "--no-plots", "--no-progress", env_extra={"MINIGROW_DATA": ""})
    assert r.returncode == 0, r.stderr
    hist = json.loads((out / "history.json").read_text())
    model = load(out / "model.npz")["model"]
    d = load_fashion_mnist(data_dir=FASHION_DIR, n_train=500, n_test=200)
    assert float((model.predict(d.X_test) == d.y_test).mean()) == pytest.approx(hist["epochs"][-1]["test_acc"],
                                                                                  abs=1e-6)


def test_fashion_folder_from_argument_or_environment(tmp_path, monkeypatch):
    """data_dir argument > MINIGROW_DATA > /usr/share/datasets/fashion-mnist."""
    imgs_a, _ = write_fashion(tmp_path / "a", rng=1)
    imgs_b, _ = write_fashion(tmp_path / "b", rng=2)
    monkeypatch.setenv("MINIGROW_DATA", str(tmp_path / "a"))
    np.testing.assert_array_equal(load_fashion_mnist().X_train, scale_images(imgs_a[:5]))
    np.testing.assert_array_equal(load_fashion_mnist(data_dir=tmp_path / "b").X_train, scale_images(imgs_b[:5]))
    np.testing.assert_array_equal(load_fashion_mnist(str(tmp_path / "b")).X_train, scale_images(imgs_b[:5]))
    monkeypatch.setenv("MINIGROW_DATA", str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match=r"nothing/train-images-idx3-ubyte\[.gz\] not found \(folder from "
                                                r"MINIGROW_DATA=.*nothing\); install the Debian package"):
        load_fashion_mnist()
    with pytest.raises(ValueError, match=r"data_dir: expected a folder, got the file"):
        load_fashion_mnist(data_dir=tmp_path / "a" / "train-labels-idx1-ubyte")
    with pytest.raises(TypeError, match=r"data_dir: expected a file path"):
        load_fashion_mnist(data_dir=3)


def test_mnist_folder_from_argument_or_environment(tmp_path, monkeypatch):
    """mnist.npz: path > data_dir argument > MINIGROW_DATA > the bundled copy."""
    monkeypatch.delenv("MINIGROW_DATA", raising=False)
    bundled = data_dir()
    assert bundled == Path(minigrow.data.__file__).resolve().parent / "_data"      # inside the package
    assert (bundled / "mnist.npz").exists()
    fake_mnist((tmp_path / "a").mkdir() or tmp_path / "a" / "mnist.npz")
    fake_mnist((tmp_path / "b").mkdir() or tmp_path / "b" / "mnist.npz", x_test=np.full((2, 28, 28), 255, np.uint8))
    assert load_mnist(data_dir=tmp_path / "a").X_train.shape == (4, 784)
    monkeypatch.setenv("MINIGROW_DATA", str(tmp_path / "b"))
    assert data_dir() == tmp_path / "b" and data_dir(tmp_path / "a") == tmp_path / "a"
    assert load_mnist().X_test.max() == 1.0                                  # b's
    assert load_mnist(data_dir=tmp_path / "a").X_test.max() == 0.0           # the argument wins
    assert load_mnist(bundled / "mnist.npz", n_train=10, n_test=10).y_train[:3].tolist() == [5, 0, 4]
    monkeypatch.setenv("MINIGROW_DATA", str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match=r"MNIST file not found at .*nothing/mnist.npz \(from MINIGROW_DATA="):
        load_mnist()
    with pytest.raises(ValueError, match=r"path: give either path \(the file, .*\) or data_dir \(its folder"):
        load_mnist(tmp_path / "a" / "mnist.npz", data_dir=tmp_path / "a")
    with pytest.raises(ValueError, match=r"data_dir: expected a folder, got the file .*mnist.npz"):
        load_mnist(data_dir=tmp_path / "a" / "mnist.npz")


def test_cli_data_dir(tmp_path):
    """--data-dir on the commands that take --data: a folder of Fashion-MNIST files, a folder with mnist.npz."""
    imgs, labels = write_fashion(tmp_path / "fash", n_train=8, n_test=4)
    r = run_cli("train", "--data", "fashion", "--data-dir", str(tmp_path / "fash"), "--epochs", "1",
                "--out", str(tmp_path / "o1"), "--no-plots", "--no-progress")
    assert r.returncode == 0, r.stderr
    model = load(tmp_path / "o1" / "model.npz")["model"]
    dense = [layer for layer in model.layers if "W" in layer.params]
    assert dense[0].params["W"].shape[1] == 784 and dense[-1].params["W"].shape[0] == int(labels[:8].max()) + 1
    fake_mnist((tmp_path / "m").mkdir() or tmp_path / "m" / "mnist.npz")
    r = run_cli("prune", "--data", "mnist", "--data-dir", str(tmp_path / "m"), "--hidden", "4", "--epochs", "1",
                "--out", str(tmp_path / "o2"), "--no-plots", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "o2" / "history.json").read_text())
    # MINIGROW_DATA reaches the CLI too
    r = run_cli("insert", "--data", "fashion", "--hidden", "4", "--epochs", "1,1", "--out", str(tmp_path / "o3"),
                "--no-plots", "--no-progress", env_extra={"MINIGROW_DATA": str(tmp_path / "fash")})
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("argv, match", [
    (["train", "--data", "spirals", "--data-dir", "/tmp"], "--data-dir: only used with --data mnist or --data fashion"),
    (["train", "--data", "fashion", "--data-dir", "/nonexistent/x"], "dataset-fashion-mnist"),
    (["insert", "--data", "mnist", "--data-dir", "/nonexistent/x"], r"MNIST file not found at /nonexistent/x/mnist"),
])
def test_cli_data_dir_errors(argv, match, capsys):
    from minigrow.cli import main
    assert main([*argv, "--no-progress", "--no-plots", "--out", "/nonexistent/out"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("minigrow: error:")
    assert re.search(match, err[0])


# ------------------------------------------------------------------ bad inputs reach the user as ValueError
def trainer():
    return Trainer(mlp([2, 4, 2], rng=0), "ce", Adam(1e-2), batch_size=4, rng=0, progress=False)


@pytest.mark.parametrize("X, y, match", [
    (np.zeros((5, 3)), np.zeros(5, int), r"expected 2 features"),
    (np.zeros(5), np.zeros(5, int), r"X(_train)?: expected a 2-d array"),
    (np.array([[0.0, np.nan]] * 3), np.zeros(3, int), r"X(_train)?: expected finite values, got nan"),
    (np.zeros((3, 2)), np.array([0, 2, 1]), r"y(_train)?: expected integer labels in \[0, 2\), got 2 at index 1"),
    (np.zeros((3, 2)), np.array([0, 1]), r"y(_train)?: expected 3 labels"),
    (np.zeros((0, 2)), np.zeros(0, int), r"X(_train)?: expected at least 1 sample"),
])
def test_trainer_bad_inputs(X, y, match):
    with pytest.raises(ValueError, match=match):
        trainer().fit(X, y, 1)


# ------------------------------------------------------------------ packaging: the bundled MNIST ships in the wheel
def _copy_project(dst):
    """What a build needs (setup.cfg, pyproject.toml, README.md, LICENSE, minigrow/), copied so that the build's
    build/ and *.egg-info land under tmp_path, never in the repository."""
    import shutil
    dst.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, dst / name)
    shutil.copytree(ROOT / "minigrow", dst / "minigrow", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def test_setup_cfg_declares_the_bundled_mnist_as_package_data(monkeypatch):
    """Fast check (the slow test below builds and installs the wheel): setup.cfg's [options.package_data] for the
    package minigrow has a pattern matching the file data_dir() resolves to, and that file is the checked MNIST."""
    import configparser
    import fnmatch
    import hashlib
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    patterns = cfg.get("options.package_data", "minigrow", fallback="").split()
    monkeypatch.delenv("MINIGROW_DATA", raising=False)
    bundled = data_dir() / "mnist.npz"
    package = ROOT / "minigrow"
    rel = bundled.relative_to(package).as_posix()            # raises if the file is outside the package
    assert any(fnmatch.fnmatch(rel, pat) for pat in patterns), (rel, patterns)
    assert hashlib.sha256(bundled.read_bytes()).hexdigest() == MNIST_SHA256
    assert not (ROOT / "data" / "mnist.npz").exists()           # moved, not duplicated


@pytest.mark.slow      # 5–25 s here (pip builds in an isolated environment), so on demand: pytest -m slow
def test_wheel_ships_the_bundled_mnist_and_an_install_elsewhere_finds_it(tmp_path):
    """A non-editable install: build the wheel, check minigrow/_data/mnist.npz is in it (byte for byte), install
    it into a folder of its own and load MNIST from a process that cannot see the source tree."""
    import hashlib
    import importlib.util
    import zipfile
    if importlib.util.find_spec("pip") is None:
        pytest.skip("pip is not installed in this interpreter (needed to build the wheel)")
    src = tmp_path / "src"
    _copy_project(src)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
           "-w", str(tmp_path / "wheels"), str(src)]
    if importlib.util.find_spec("setuptools") and importlib.util.find_spec("wheel"):
        cmd.insert(4, "--no-build-isolation")       # offline; otherwise pip fetches setuptools+wheel from PyPI
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    if r.returncode and "satisfies the requirement setuptools" in r.stderr:
        pytest.skip("no access to PyPI for the isolated build backend (setuptools, wheel); install 'wheel' to "
                    "build offline")
    assert r.returncode == 0, r.stdout + r.stderr
    wheels = sorted((tmp_path / "wheels").glob("minigrow-*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as z:
        names = z.namelist()
        assert "minigrow/data.py" in names and "minigrow/_data/mnist.npz" in names
        assert hashlib.sha256(z.read("minigrow/_data/mnist.npz")).hexdigest() == MNIST_SHA256
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--disable-pip-version-check",
                        "--target", str(site), str(wheels[0])], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    env = {k: v for k, v in os.environ.items() if k != "MINIGROW_DATA"}
    env["PYTHONPATH"] = str(site)
    code = ("import minigrow.data as m; d = m.load_mnist(verify=True); "
            "print(m.__file__); print(m.data_dir()); print(d.X_train.shape, d.y_train[:3].tolist())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env=env)
    assert r.returncode == 0, r.stderr
    module_file, folder, shapes = r.stdout.strip().splitlines()
    assert Path(module_file).resolve() == (site / "minigrow" / "data.py").resolve()     # not the source tree
    assert Path(folder).resolve() == (site / "minigrow" / "_data").resolve()
    assert shapes == "(60000, 784) [5, 0, 4]"
