"""Arguments and helpers shared by the subcommands."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import time
from pathlib import Path

import numpy as np

from ..data import load_fashion_mnist, load_mnist, two_spirals
from ..io import to_jsonable
from ..output import check_output_target, file_kind, strict_json, write_json, write_text_atomic  # noqa: F401


def int_list(text):
    """'300,100' → [300, 100] (argparse type)."""
    import argparse
    try:
        vals = [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 300,100, got {text!r}")
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive integers like 300,100, got {text!r}")
    return vals


def _number_type(convert, ok, want, doc):
    """An argparse type: ``convert`` the text, then require ``ok(value)`` (else "expected {want}")."""
    import argparse
    kind = "an integer" if convert is int else "a number"

    def parse(text):
        try:
            v = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}")
        return v

    parse.__doc__ = doc
    return parse


positive_float = _number_type(float, lambda v: np.isfinite(v) and v > 0, "a number > 0", "a finite number > 0")
nonneg_float = _number_type(float, lambda v: np.isfinite(v) and v >= 0, "a finite number >= 0",
                            "a finite number >= 0, e.g. --weight-decay")
unit_float = _number_type(float, lambda v: 0 <= v < 1, "a number in [0, 1)", "a number in [0, 1), e.g. --momentum")
positive_int = _number_type(int, lambda v: v >= 1, "an integer >= 1", "an integer >= 1")
nonneg_int = _number_type(int, lambda v: v >= 0, "an integer >= 0", "an integer >= 0")


def add_data_args(p, default="spirals"):
    p.add_argument("--data", choices=["spirals", "mnist", "fashion"], default=default,
                   help=f"data set (default {default}); mnist is the bundled minigrow/_data/mnist.npz")
    p.add_argument("--n-train", type=positive_int, default=None, help="use the first N training samples")
    p.add_argument("--n-test", type=positive_int, default=None, help="use the first N test samples")
    p.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                   help="folder with mnist.npz or the four Fashion-MNIST IDX files (default: $MINIGROW_DATA if set, "
                        "else the bundled MNIST / /usr/share/datasets/fashion-mnist)")


def add_run_args(p, out_default):
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of every random draw (default 0)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--out", type=Path, default=Path(out_default), help=f"output folder (default {out_default})")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.add_argument("--no-plots", action="store_true", help="skip the plots (no matplotlib needed)")
    add_threads_arg(p)


def add_threads_arg(p):
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="pin the BLAS threads to N (needs threadpoolctl: pip install 'minigrow[threads]'); results "
                        "differ in the last bits between thread counts, so pin it for bit-identical reruns")


def add_sweep_args(p):
    """``--jobs N`` and ``--scheduler ADDRESS`` of a command made of independent runs (minigrow.sweep)."""
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                   help="run the independent runs in N worker processes, one BLAS thread each (default 1); the "
                        "results are bit-identical to --jobs 1 and in the same order")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run them on the Dask cluster at ADDRESS (tcp://host:port) instead; needs "
                        "pip install 'minigrow[dist]'")


def sweep_kwargs(args):
    """``jobs=…, scheduler=…`` for :func:`minigrow.sweep.run_sweep` from ``--jobs``/``--scheduler``."""
    if args.scheduler is not None and given(args, "jobs"):
        raise ValueError("--jobs: has no effect with --scheduler (the cluster's workers run the runs); drop it")
    return {"jobs": args.jobs, "scheduler": args.scheduler}


def given(args, name):
    """True when ``--name`` was given on the command line (``args.explicit`` from :func:`minigrow.cli.main`; a
    namespace built elsewhere falls back to "differs from the default")."""
    explicit = getattr(args, "explicit", None)
    if explicit is not None:
        return name in explicit
    return None


def refuse_unused(args, names, why):
    """Flags that have no effect in the chosen mode are refused, not ignored."""
    for name in names:
        if given(args, name):
            raise ValueError(f"--{name.replace('_', '-')}: has no effect {why}; drop it")


def add_checkpoint_args(p):
    """``--checkpoint-every N`` and ``--resume PATH`` (docs/reliability.md)."""
    p.add_argument("--checkpoint-every", type=nonneg_int, default=0, metavar="N",
                   help="write OUT/checkpoints/epoch-NNNN.npz every N epochs (0 = never, the default)")
    p.add_argument("--resume", type=Path, default=None, metavar="PATH",
                   help="continue the run saved in a checkpoint file (or the newest one in a folder) up to "
                        "--epochs in all; the run's settings come from the checkpoint")


def load_data(args, dtype=np.float32):
    """Dataset for ``--data`` with ``--n-train``/``--n-test`` subsets."""
    if args.data == "spirals":
        if args.data_dir is not None:
            raise ValueError("--data-dir: only used with --data mnist or --data fashion (spirals are generated)")
        d = two_spirals(rng=args.seed, dtype=dtype)
        for flag, n, key in (("--n-train", args.n_train, "X_train"), ("--n-test", args.n_test, "X_test")):
            if n and n > d[key].shape[0]:
                raise ValueError(f"{flag}: expected at most {d[key].shape[0]} (the size of the spirals "
                                 f"{key[2:]} split), got {n}")
        if args.n_train:
            d["X_train"], d["y_train"] = d["X_train"][:args.n_train], d["y_train"][:args.n_train]
        if args.n_test:
            d["X_test"], d["y_test"] = d["X_test"][:args.n_test], d["y_test"][:args.n_test]
        return d
    loader = load_mnist if args.data == "mnist" else load_fashion_mnist
    return loader(n_train=args.n_train, n_test=args.n_test, dtype=dtype, data_dir=args.data_dir)






class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


def _jsonish(v):
    return json.loads(json.dumps(to_jsonable(v)))


def settings_from_checkpoint(args, command, run_args):
    """On ``--resume``: load the checkpoint and take the run's settings (``run_args``) from it.

    A flag given explicitly with a value other than the checkpoint's is an error: resuming keeps the original
    settings. Returns the loaded checkpoint (``minigrow.checkpoint.load_checkpoint``).
    """
    from ..checkpoint import load_checkpoint
    from . import build_parser
    ck = load_checkpoint(args.resume)
    saved = ck["user"].get("args")
    if not isinstance(saved, dict) or ck["user"].get("command") != command:
        raise ValueError(f"--resume: {ck['path']} was not written by 'python -m minigrow {command}'")
    defaults = build_parser().parse_args([command])
    for key in run_args:
        value, default = getattr(args, key), getattr(defaults, key)
        explicit = given(args, key)
        if explicit is None:                     # no command line at hand: "differs from the default"
            explicit = value != default
        if explicit and _jsonish(value) != _jsonish(saved.get(key, default)):
            raise ValueError(f"--{key.replace('_', '-')}: the checkpoint's run used {saved.get(key)!r}, got "
                             f"{value!r}; resuming keeps the original settings (drop the flag)")
    for key in run_args:
        setattr(args, key, saved.get(key, getattr(defaults, key)))   # keys added later: their defaults
    return ck


# ------------------------------------------------------------------------------------------------------------------
# Output folders (docs/reliability.md, "Output folders"): every command writes through one RunFolder.
#
#   * checked before the work starts: --out must be (or become) a writable folder; every file the run will write
#     must be absent or a regular file (a device, FIFO, folder or symbolic link in its place is refused — a link is
#     never replaced); names taken from the user (--tag …) must stay inside the folder;
#   * locked while in use: OUT/.minigrow.lock held with flock(LOCK_EX | LOCK_NB) — a second run into the same folder
#     stops at once with one line; the kernel drops the lock when a process dies, so there are no stale locks;
#   * written atomically as a whole: files go to OUT/.staging-<pid>/ (each fsync'ed); only when all of them are
#     written are they renamed into place, files of the previous run's manifest that this run does not write are
#     removed, and OUT/manifest.json (files, sizes, SHA-256, command, status) is renamed in LAST. A full disk or a
#     crash while writing leaves the previous run's files and manifest untouched; a folder whose manifest is
#     missing or does not match its files is an interrupted commit.
#   * checkpoints (OUT/checkpoints/epoch-NNNN.npz) belong to the run in the folder: a new run into a folder that
#     holds checkpoints of an earlier run is refused before the work starts (continue it with --resume, or use
#     another --out), so a new run can never mix its checkpoints with old ones.

MANIFEST = "manifest.json"
LOCK = ".minigrow.lock"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def safe_name(flag, text):
    """A user-given name that becomes part of a file name (``--tag``): letters, digits, ``._-``; never a path."""
    text = str(text)
    if text == "":
        return text
    if not _SAFE_NAME.match(text.lstrip("_-")) or ".." in text:
        raise ValueError(f"{flag}: expected a name of letters, digits, '.', '_' and '-' (it becomes part of a file "
                         f"name inside --out), got {text!r}")
    return text


def check_input_file(flag, path, allow_dir=False):
    """An input path (``--resume``, ``--model``): an existing regular file (or folder); a FIFO or device is refused
    before anything opens it (opening a FIFO for reading blocks forever)."""
    path = Path(path)
    try:
        st = path.stat()                       # follows a symbolic link
    except FileNotFoundError:
        raise FileNotFoundError(f"{flag}: {path}: no such file") from None
    if stat.S_ISREG(st.st_mode) or (allow_dir and stat.S_ISDIR(st.st_mode)):
        return path
    want = "a file or a folder" if allow_dir else "a file"
    raise ValueError(f"{flag}: {path} is {file_kind(st)}, expected {want}")


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class RunFolder:
    """The output folder of one command run; see the comment block above for the guarantees.

    Use::

        with RunFolder(args.out, "train", files=["history.json", "model.npz"]) as rf:
            ... training ...
            write_json(rf.stage("history.json"), history)      # into the staging folder
            save(rf.stage("model.npz"), model)
            rf.commit()                                        # rename into place, manifest.json last

    ``files``: the names the run will write (checked before the work starts); ``checkpoints``: the run writes
    ``OUT/checkpoints`` (``None``: not a checkpointing command; ``"new"``: a new run; a Path: the checkpoint
    ``--resume`` continues). ``manifest=False`` for the repository's ``docs/`` (reproductions): the files are still
    staged and renamed, but no manifest.json is written there.
    """

    def __init__(self, out, command, files=(), checkpoints=None, manifest=True):
        self.out = Path(out)
        self.command = command
        self.files = list(files)
        self.checkpoints = checkpoints
        self.manifest = manifest
        self.staging = None
        self._lock_fd = None
        self.committed = False

    # --- before the work ---------------------------------------------------------------------------------------
    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def open(self):
        out = self.out
        if out.is_symlink() and not out.exists():
            raise ValueError(f"--out: {out} is a dangling symbolic link")
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out: {out} is {file_kind(out.stat())}, expected a folder (choose another --out)")
        for parent in out.parents:                         # a file where a parent folder should be
            if parent.exists():
                if not parent.is_dir():
                    raise ValueError(f"--out: {parent} is {file_kind(parent.stat())}, so {out} cannot be created")
                break
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"--out: cannot create the folder {out}: {exc.strerror or exc}") from None
        self._lock()
        try:
            for name in self.files:
                check_output_target(self._target(name))
            check_output_target(out / MANIFEST)
            self._check_checkpoints()
            self.staging = out / f".staging-{os.getpid()}"
            if self.staging.exists():
                shutil.rmtree(self.staging)
            try:
                self.staging.mkdir()
                probe = self.staging / ".probe"
                with open(probe, "wb") as fh:            # writable? (a read-only folder or mount fails here, not
                    fh.write(b"x")                        # after the training)
                probe.unlink()
            except OSError as exc:
                self.staging = None
                raise OSError(f"--out: cannot write into {out}: {exc.strerror or exc}") from None
        except BaseException:
            self.close()
            raise
        return self

    def _lock(self):
        try:
            import fcntl
        except ImportError:                                # not POSIX: no lock (documented)
            return
        path = self.out / LOCK
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise ValueError(f"--out: {path} is not a regular file; remove it")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OSError(f"--out: cannot write into {self.out}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            except OSError:
                holder = "another process"
            os.close(fd)
            raise ValueError(f"--out: {self.out} is in use by another minigrow run ({holder}); wait for it to "
                             f"finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, {self.command}".encode(), 0)
        self._lock_fd = fd

    def _target(self, name):
        p = (self.out / name)
        root = os.path.realpath(self.out)
        if os.path.commonpath([root, os.path.realpath(p.parent)]) != root or Path(name).is_absolute() or \
                ".." in Path(name).parts:
            raise ValueError(f"--out: the file name {name!r} would be written outside {self.out}")
        return p

    def _check_checkpoints(self):
        if self.checkpoints is None:
            return
        from ..checkpoint import latest_checkpoint
        ckdir = self.out / "checkpoints"
        if ckdir.exists() and not ckdir.is_dir():
            raise ValueError(f"--out: {ckdir} is {file_kind(ckdir.stat())}, expected a folder for the checkpoints")
        newest = latest_checkpoint(ckdir)
        if newest is None:
            return
        if self.checkpoints == "new":
            raise ValueError(f"--out: {ckdir} holds checkpoints of an earlier run (newest {newest.name}); continue "
                             f"that run with --resume {ckdir}, or choose another --out, or delete the folder")
        src = Path(os.path.realpath(self.checkpoints))
        if src.parent != Path(os.path.realpath(ckdir)):
            raise ValueError(f"--out: {ckdir} holds checkpoints of another run (newest {newest.name}), but --resume "
                             f"continues {self.checkpoints}; choose an --out without checkpoints")

    # --- writing --------------------------------------------------------------------------------------------------
    def stage(self, name=""):
        """The staging path for ``name`` (a file or sub-folder of OUT); its parent folder exists."""
        if self.staging is None:
            raise RuntimeError("RunFolder.stage: call open() first")
        if name:
            self._target(name)                               # refuses a name that leaves OUT
        p = self.staging / name if name else self.staging
        (p if name == "" else p.parent).mkdir(parents=True, exist_ok=True)
        return p

    def stage_dir(self, name):
        """A staged sub-folder of OUT (created)."""
        p = self.stage(name)
        p.mkdir(parents=True, exist_ok=True)
        return p

    def commit(self, status="complete", info=None):
        """Move every staged file into OUT (atomic renames), drop the previous run's other files, manifest last."""
        staged = sorted(p for p in self.staging.rglob("*") if p.is_file() and p.name != ".probe")
        rels = [p.relative_to(self.staging).as_posix() for p in staged]
        for rel in rels:
            check_output_target(self._target(rel))
        entries = {}
        for p, rel in zip(staged, rels):
            with open(p, "rb+") as fh:                     # plots and the like were not fsync'ed by their writer
                os.fsync(fh.fileno())
            entries[rel] = {"bytes": p.stat().st_size, "sha256": _sha256(p)}
        man = None
        if self.manifest:
            man = self.staging / MANIFEST
            doc = {"format": "minigrow-run-1", "command": self.command, "status": status, "files": entries,
                   "pid": os.getpid(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            if self.checkpoints is not None and (self.out / "checkpoints").is_dir():
                doc["checkpoints"] = sorted(p.name for p in (self.out / "checkpoints").glob("epoch-*.npz"))
            if info:
                doc.update(info)
            write_text_atomic(man, strict_json(doc))
            old = self.out / MANIFEST
            previous = {}
            if old.is_file():
                try:
                    previous = json.loads(old.read_text()).get("files", {})
                except (ValueError, OSError, AttributeError):
                    previous = {}
                old.unlink()                               # from here on the folder has no valid manifest …
        for p, rel in zip(staged, rels):
            dst = self.out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(p, dst)
        if self.manifest:
            for rel in previous if isinstance(previous, dict) else ():
                if rel not in entries and rel != MANIFEST:
                    try:
                        tgt = self._target(rel)
                        if tgt.is_file() and not tgt.is_symlink():
                            tgt.unlink()
                    except (ValueError, OSError):
                        pass
            _fsync_dir(self.out)
            os.replace(man, self.out / MANIFEST)           # … until this rename: the manifest comes last
        _fsync_dir(self.out)
        self.committed = True
        return self.out

    def close(self):
        if self.staging is not None and self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)
        self.staging = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)                        # releases the flock
            self._lock_fd = None


# ------------------------------------------------------------------------------------------------------------------
def available_memory():
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or None when unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _gb(n):
    if n >= 100 * 2**30:
        return f"{n / 2**30:,.0f} GB"
    return f"{n / 2**30:.3g} GB" if n >= 2**30 else f"{n / 2**20:.3g} MB"


def estimate_mlp_bytes(sizes, batch, itemsize):
    """Peak bytes of training an MLP with layer widths ``sizes``: per parameter the value, its gradient, two
    optimiser-state arrays and the epoch-start rollback copy (5 × itemsize), plus the float64 draw of the largest
    weight matrix at initialisation, plus the activations and their gradients of one batch (4 × itemsize per unit)."""
    n_params = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    largest = max(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return n_params, 5 * itemsize * n_params + 8 * largest + 4 * itemsize * batch * sum(sizes)


def check_memory(args, sizes, data, dtype, flag="--hidden"):
    """Refuse, before anything big is allocated, a network that cannot fit into the available memory: one line,
    exit status 2, instead of a MemoryError traceback after minutes."""
    n = data.X_train.shape[0]
    bs = getattr(args, "batch_size", None) or n
    n_params, need = estimate_mlp_bytes(sizes, max(min(bs, n), min(4096, data.X_test.shape[0])),
                                        np.dtype(dtype).itemsize)
    avail = available_memory()
    if avail is not None and need > avail:
        raise ValueError(f"{flag}: a network with widths {list(sizes)} has {n_params:,} parameters and needs about "
                         f"{_gb(need)} to train, more than the {_gb(avail)} of memory available; use smaller widths "
                         f"(or --batch-size)")
    return need


def renamed_action(old, new):
    """An argparse action for a flag with a new name (``new``) and its old spelling (``old``, kept for one release):
    stores the value; the old spelling leaves a deprecation note that :func:`minigrow.cli.main` prints once."""
    import argparse

    class Renamed(argparse._StoreAction):
        def __call__(self, parser, namespace, values, option_string=None):
            setattr(namespace, self.dest, values)
            if option_string == old:
                notes = list(getattr(namespace, "notes", None) or [])
                notes.append((old, new))
                namespace.notes = notes
    return Renamed


def add_lr_schedule_args(p, step_default=None, decay_default=0.5, dest_step="lr_step", dest_decay="lr_decay"):
    """``--lr-step N`` / ``--lr-decay F`` (StepLR: every N epochs the learning rate is multiplied by F) — the names
    every command uses; ``--step-size`` / ``--gamma`` are the old spellings of train and insert."""
    p.add_argument("--lr-step", "--step-size", dest=dest_step, type=positive_int, default=step_default, metavar="N",
                   action=renamed_action("--step-size", "--lr-step"),
                   help="StepLR: epochs between learning-rate decays" +
                        (f" (default {step_default})" if step_default else " (default: constant learning rate)"))
    p.add_argument("--lr-decay", "--gamma", dest=dest_decay, type=positive_float, default=decay_default, metavar="F",
                   action=renamed_action("--gamma", "--lr-decay"),
                   help=f"StepLR: factor of each decay (default {decay_default})")


def add_into_docs_arg(p):
    """``--into-docs``: the maintainers' reproductions write the repository's docs/results and docs/figures."""
    p.add_argument("--into-docs", action="store_true",
                   help="write the repository's docs/results and docs/figures (maintainers; a source checkout only) "
                        "instead of --out")


def deprecated(args, old, new):
    """``old`` still works for this release, ``new`` is the spelling to use: :func:`minigrow.cli.main` says so in
    one line on stderr when the command has succeeded (an error stays one line)."""
    args.notes = list(getattr(args, "notes", None) or []) + [(old, new)]


def reproduction_folder(out, quick, command, files=(), default=None, into_docs=False, method=None, what=None):
    """The :class:`RunFolder` of a reproduction and whether it is the repository's ``docs/``.

    * ``--out`` given: that folder;
    * else ``--into-docs``: the repository's ``docs/`` (only in a source checkout; never with ``--quick``);
    * else ``runs/reproduce/<method>/<what>`` in the current folder (``--quick``: ``runs/quick/<command>``).

    A quick run never touches the committed results: an explicit ``--out`` inside them is refused for it.
    ``docs/`` gets no manifest.json (the files are still staged and renamed in atomically).
    """
    from ..experiments import REPO_ROOT, touches_committed
    explicit_out = out is not None and not (default is not None and str(out) == default)
    if into_docs:
        if quick:
            raise ValueError("--into-docs: a --quick run never writes into the repository's committed results; "
                             "drop --into-docs (or --quick)")
        if explicit_out:
            raise ValueError("--into-docs: it writes the repository's docs/ folder; drop --out (or --into-docs)")
        root = REPO_ROOT / "docs"
        if not (root / "results").is_dir() or not (REPO_ROOT / "minigrow").is_dir():
            raise ValueError(f"--into-docs: {root} is not the docs/ folder of a minigrow source checkout (the "
                             f"package is installed elsewhere); use --out")
    elif explicit_out:
        root = Path(out)
    elif quick:
        root = Path("runs") / "quick" / command
    else:
        root = Path("runs") / "reproduce" / (method or command) / (what or "")
    in_docs = touches_committed(root)
    if quick and in_docs:
        raise ValueError(f"--out: a --quick run never writes into the repository's committed results ({root}); "
                         f"choose another folder")
    return RunFolder(root, command, files, manifest=not in_docs), root == REPO_ROOT / "docs"
