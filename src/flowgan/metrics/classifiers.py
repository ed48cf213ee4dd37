r"""The pretrained classifiers behind the sample scores: architectures, files, lookup, training.

The Inception and MODE scores (§3.2 of the paper; Salimans et al. 2016, Che et al. 2017) need a
classifier ``p(y|x)`` for the labels of the dataset; FID/KID (Heusel et al. 2017; Bińkowski et
al. 2018) need a feature map. Offline, flowgan uses its own small networks:

=============== =================================================================================
``cnn``         :class:`SmallCNN`, for 1-channel images (MNIST, Fashion-MNIST, digits): two
                blocks of two 3×3 conv + batch-norm + ReLU (16, 32 channels) and a 2×2 max-pool,
                adaptive average pooling to 4×4, a 128-unit ReLU layer (the *features* used for
                FID/KID) and a linear layer to the logits. 83 k parameters at width 16
                (``mnist-clean``), 137 k at width 24 (``mnist-robust``: 24, 48 channels).
``resnet``      :class:`SmallResNet`, for 3-channel images (CIFAR-10): a 3×3 stem and three
                stages of one residual block each (widths 16, 32, 64; strides 1, 2, 2), global
                average pooling (the 64 *features*) and a linear layer. 78 k parameters.
=============== =================================================================================

Both take images in ``[0, 1]`` (the normalisation ``(x - mean) / std`` is part of the module) and
are trained on *dequantized* images ``(k + u)/256``, ``u ~ U(0, 1)`` -- the continuous images the
flow's likelihood sees (Appendix A) and that its samples imitate -- with random translations (and
horizontal flips for colour images); ``augment="flow"`` (``mnist-robust``) adds the pixel noise
of flow samples (:func:`.noise.flow_augment`).

Files. A classifier file (``torch.save``, loadable with ``weights_only=True``) holds a dict::

    format "flowgan-classifier", version, arch, arch_options, state_dict, family, trained_on,
    train_images, shape, num_classes, normalization {"mean", "std"}, input, test_accuracy,
    val_accuracy, epochs, seed, train_seconds, torch

A TorchScript module (``torch.jit.save``) is accepted too: its ``forward`` must take ``(N, C, H, W)``
images in ``[0, 1]`` and return logits; an exported ``features`` method, if present, gives the
FID/KID features (else the logits are used).

Names and lookup (:func:`find_classifier`, :func:`resolve_classifier`). The default is always a
classifier *shipped* in ``flowgan/metrics/weights/`` (:data:`DEFAULT_CLASSIFIERS`): MNIST-shaped
data get ``mnist-robust`` (full MNIST, trained with flow-like pixel noise, see :mod:`.noise`),
CIFAR-10-shaped data ``cifar10-small`` (trained on the 3,600 training images of cifar10-5k only);
see ``weights/README.md``. Other shipped names: ``mnist-clean`` (full MNIST, clean digits only).
A cached or user-trained classifier is used **only when named** (``--classifier NAME|PATH``):
``flowgan classifier train --dataset D`` writes ``<cache>/D.pt`` (``<cache>`` =
``$FLOWGAN_CACHE/classifiers`` or ``~/.cache/flowgan/classifiers``), named ``D``. Every score
records the classifier's name, training data, clean test accuracy and a short content hash
(:meth:`ScoreClassifier.summary`). Families: ``mnist`` (mnist, mnist5k and other 1×28×28
datasets), ``fashion-mnist``, ``cifar10`` (cifar10 and 3×32×32 datasets), ``digits``, and any
other ``.npz`` dataset by its file stem.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import FlowganError

FORMAT = "flowgan-classifier"
VERSION = 1
WEIGHTS_DIR = Path(__file__).parent / "weights"
#: the classifiers shipped in ``flowgan/metrics/weights``: name (what users type with
#: ``--classifier``) -> (file, family)
SHIPPED_CLASSIFIERS: dict[str, tuple[str, str]] = {
    "mnist-robust": ("mnist_robust_cnn.pt", "mnist"),
    "mnist-clean": ("mnist_cnn.pt", "mnist"),
    "cifar10-small": ("cifar10_resnet.pt", "cifar10"),
}
#: family -> the name of its default classifier: always a shipped one, never the cache
DEFAULT_CLASSIFIERS: dict[str, str] = {"mnist": "mnist-robust", "cifar10": "cifar10-small"}
#: family -> file of its default classifier (kept for callers of the first versions)
SHIPPED = {family: SHIPPED_CLASSIFIERS[name][0] for family, name in DEFAULT_CLASSIFIERS.items()}
INPUT_CONVENTION = "images in [0, 1]; trained on dequantized (k + u)/256, u ~ U(0, 1)"


# --------------------------------------------------------------------------------------------
# architectures


class SmallCNN(nn.Module):
    """Two conv blocks (``width``, ``2·width`` channels), 4×4 adaptive pooling, ``hidden`` features."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16, hidden: int = 128, dropout: float = 0.3):
        super().__init__()

        def conv(i: int, o: int) -> list[nn.Module]:
            return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

        w = width
        self.body = nn.Sequential(
            *conv(in_channels, w), *conv(w, w), nn.MaxPool2d(2),
            *conv(w, 2 * w), *conv(2 * w, 2 * w), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(2 * w * 16, hidden), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.body(x)))


class _Block(nn.Module):
    """Basic residual block (He et al. 2016): two 3×3 convs with batch-norm, projection shortcut."""

    def __init__(self, i: int, o: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(i, o, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(o)
        self.c2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(o)
        self.short = nn.Identity() if stride == 1 and i == o else nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(h)) + self.short(x))


class SmallResNet(nn.Module):
    """3×3 stem, stages of ``blocks`` residual blocks at widths ``w, 2w, 4w``, global average pool."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 16, blocks: int = 1, dropout: float = 0.0):
        super().__init__()
        w = width
        layers: list[nn.Module] = [nn.Conv2d(in_channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        c = w
        for stage, out in enumerate((w, 2 * w, 4 * w)):
            for b in range(blocks):
                layers.append(_Block(c, out, 2 if (stage > 0 and b == 0) else 1))
                c = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.body(x)))


ARCHS: dict[str, type] = {"cnn": SmallCNN, "resnet": SmallResNet}


class Classifier(nn.Module):
    """``net((x - mean) / std)`` for images ``x`` in ``[0, 1]``: ``forward`` gives logits,
    ``features`` the penultimate layer (FID/KID). Scriptable with ``torch.jit.script``."""

    def __init__(self, net: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features((x - self.mean) / self.std)


def build_classifier(arch: str, shape: tuple[int, ...], num_classes: int, mean: list[float], std: list[float], **options) -> Classifier:
    if arch not in ARCHS:
        raise FlowganError(f"unknown classifier architecture {arch!r}; choose from {', '.join(ARCHS)}")
    net = ARCHS[arch](in_channels=int(shape[0]), num_classes=int(num_classes), **options)
    return Classifier(net, mean, std).to(torch.float32)


def default_arch(shape: tuple[int, ...]) -> tuple[str, dict[str, Any]]:
    """``cnn`` (width 16) for grey-scale images, ``resnet`` (width 16) for colour images."""
    return ("cnn", {"width": 16}) if shape[0] == 1 else ("resnet", {"width": 16})


# --------------------------------------------------------------------------------------------
# a loaded classifier, with what the scores need to know about it


@dataclass
class ScoreClassifier:
    """A classifier ready for scoring: the module plus what it is and where it came from."""

    module: nn.Module
    name: str  # e.g. "mnist-cnn"
    source: str  # "shipped", "cache", "path" or "inception"
    path: str | None
    trained_on: str
    num_classes: int
    shape: tuple[int, ...] | None
    test_accuracy: float | None = None
    has_features: bool = True
    key: str = ""  # identifies the weights (reference-feature cache key)
    info: dict = field(default_factory=dict)
    sha256: str = ""  # short content hash of the file (12 hex digits)
    #: images (N, C, H, W) in [0, 1], float32 on the device -> (logits, features or None)
    run: Callable[[torch.Tensor, bool], tuple[torch.Tensor, torch.Tensor | None]] | None = None

    def ident(self) -> str:
        """``name@hash``: short, and unique for the weights (what metrics.jsonl records)."""
        return f"{self.name}@{self.sha256}" if self.sha256 else self.name

    def describe(self) -> str:
        acc = "" if self.test_accuracy is None else f", clean test accuracy {100 * self.test_accuracy:.2f}%"
        where = self.path or self.source
        sha = f" (sha256 {self.sha256})" if self.sha256 else ""
        return f"{self.name}{sha} trained on {self.trained_on}{acc} ({self.source}: {where})"

    def summary(self) -> dict[str, Any]:
        """What every score JSON records about the classifier: a description, and its name, the
        data it was trained on, its clean test accuracy, a short content hash and its source."""
        return {
            "classifier": self.describe(),
            "classifier_name": self.name,
            "classifier_trained_on": self.trained_on,
            "classifier_test_accuracy": self.test_accuracy,
            "classifier_sha256": self.sha256 or None,
            "classifier_source": self.source,
        }

    @torch.no_grad()
    def predict(
        self, images: torch.Tensor, *, features: bool = False, batch_size: int = 500, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (and features) of ``images`` in ``[0, 1]``, as float64 CPU tensors.

        The module runs in eval mode and float32, in batches, on ``device`` (default: where its
        parameters are); its previous train/eval mode is restored.
        """
        device = torch.device(device) if device is not None else _module_device(self.module)
        if self.shape is not None and tuple(images.shape[1:]) != tuple(self.shape):
            raise FlowganError(
                f"the {self.name} classifier expects images of shape {tuple(self.shape)}, got {tuple(images.shape[1:])}; "
                "pass a classifier for this data with --classifier"
            )
        module = self.module.to(device)
        was_training = module.training
        module.eval()
        logits, feats = [], []
        try:
            for start in range(0, len(images), batch_size):
                x = images[start : start + batch_size].to(device=device, dtype=torch.float32)
                try:
                    if self.run is not None:
                        lg, ft = self.run(x, features)
                    elif features and self.has_features:
                        ft = module.features(x)
                        lg = _head(module, ft) if _has_head(module) else module(x)
                    else:
                        lg, ft = module(x), None
                except RuntimeError as e:  # e.g. a TorchScript module made for other images
                    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                    raise FlowganError(f"classifier {self.name} failed on images of shape {tuple(x.shape[1:])}: {first[:200]}") from None
                if lg.dim() != 2:
                    raise FlowganError(f"classifier {self.name} returned logits of shape {tuple(lg.shape)}, expected (N, classes)")
                if features and ft is None:
                    ft = lg
                logits.append(lg.double().cpu())
                if features:
                    feats.append(ft.double().cpu())
        finally:
            module.train(was_training)
        out_logits = torch.cat(logits) if logits else torch.empty(0, self.num_classes, dtype=torch.float64)
        return out_logits, (torch.cat(feats) if features and feats else None)


def _has_head(module: nn.Module) -> bool:
    return isinstance(module, Classifier)


def _head(module: nn.Module, features: torch.Tensor) -> torch.Tensor:
    # our Classifier: logits = head(dropout(features)); dropout is the identity in eval mode
    return module.net.head(features)


def _module_device(module: nn.Module) -> torch.device:
    for t in (*module.parameters(), *module.buffers()):
        return t.device
    return torch.device("cpu")


# --------------------------------------------------------------------------------------------
# files


def default_classifier_dir() -> Path:
    """``$FLOWGAN_CACHE/classifiers``, else ``~/.cache/flowgan/classifiers``."""
    env = os.environ.get("FLOWGAN_CACHE")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "flowgan"
    return base / "classifiers"


def shipped_weights(family_or_name: str) -> Path | None:
    """The file of a shipped classifier: by name (``mnist-clean``), or the default of a family
    (``mnist``); None if there is none."""
    name = DEFAULT_CLASSIFIERS.get(family_or_name, family_or_name)
    entry = SHIPPED_CLASSIFIERS.get(name)
    if entry is None:
        return None
    path = WEIGHTS_DIR / entry[0]
    return path if path.is_file() else None


def save_classifier(path: str | Path, module: Classifier, meta: dict[str, Any]) -> Path:
    """Write ``module`` and its metadata (see the module docstring) atomically to ``path``."""
    from ..checkpoint import atomic_save

    state = {k: v.detach().to("cpu").clone() for k, v in module.state_dict().items()}
    record = {"format": FORMAT, "version": VERSION, **meta, "state_dict": state, "torch": str(torch.__version__)}
    path = Path(path)
    atomic_save(record, path)
    return path


def _file_sha(path: Path) -> str:
    return _file_key(path)[:12]


def _file_key(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    # TorchScript archives carry the module's code (``<name>/code/...``); torch.save archives do not
    return any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names)


def load_classifier(path: str | Path, source: str = "path", name: str | None = None) -> ScoreClassifier:
    """Load a classifier file: flowgan's format (a state dict and metadata) or a TorchScript module.
    ``name``: what the scores call it (default: the name recorded in the file, else
    ``<family>-<arch>``; ``torchscript:<file>`` for TorchScript)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FlowganError(f"classifier file {path} does not exist")
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated"
                module = torch.jit.load(str(path), map_location="cpu")
        except Exception as e:
            raise FlowganError(f"cannot load TorchScript classifier {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        has_features = hasattr(module, "features")
        return ScoreClassifier(
            module=module.float(), name=name or f"torchscript:{path.name}", source=source, path=str(path),
            trained_on="unknown (TorchScript module)", num_classes=-1, shape=None,
            has_features=has_features, key="ts-" + _file_key(path), sha256=_file_sha(path),
        )  # fmt: skip
    from ..checkpoint import load_versioned

    rec = load_versioned(
        path, FORMAT, VERSION, error=FlowganError,
        unreadable=f"{path} is neither a flowgan classifier nor a TorchScript module",
        wrong_format=f"{path} is not a flowgan classifier file (a TorchScript module also works)",
    )  # fmt: skip
    try:
        norm = rec["normalization"]
        with torch.random.fork_rng(devices=[]):  # the initialisation is overwritten: leave the global state alone
                module = build_classifier(rec["arch"], tuple(rec["shape"]), rec["num_classes"], norm["mean"], norm["std"], **rec.get("arch_options", {}))
        module.load_state_dict(rec["state_dict"])
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
        raise FlowganError(f"classifier file {path} is malformed: {str(e).splitlines()[0][:200]}") from None
    module.eval()
    info = {k: v for k, v in rec.items() if k != "state_dict"}
    return ScoreClassifier(
        module=module, name=name or str(rec.get("name") or f"{rec.get('family', '?')}-{rec['arch']}"), source=source, path=str(path),
        trained_on=str(rec.get("trained_on", "unknown")), num_classes=int(rec["num_classes"]), shape=tuple(rec["shape"]),
        test_accuracy=rec.get("test_accuracy"), key=_file_key(path), info=info, sha256=_file_sha(path),
    )  # fmt: skip


def classifier_family(dataset) -> str:
    """Which classifier scores ``dataset`` (an :class:`~flowgan.data.ImageDataset` or a name)."""
    name = dataset if isinstance(dataset, str) else dataset.name
    shape = None if isinstance(dataset, str) else tuple(dataset.shape)
    stem = Path(name).stem if name.endswith(".npz") else name
    if stem in ("mnist", "mnist5k"):
        return "mnist"
    if stem in ("cifar10", "cifar10-5k"):
        return "cifar10"
    if stem in ("fashion-mnist", "digits"):
        return stem
    if shape == (1, 28, 28):
        return "mnist"
    if shape == (3, 32, 32):
        return "cifar10"
    return stem


def _is_plain_name(text: str) -> bool:
    return "/" not in text and "\\" not in text and not text.endswith((".pt", ".pth", ".ts"))


def cached_classifiers() -> dict[str, Path]:
    """name -> file of the classifiers in the cache (``flowgan classifier train`` writes them)."""
    d = default_classifier_dir()
    return {p.stem: p for p in sorted(d.glob("*.pt"))} if d.is_dir() else {}


def resolve_classifier(spec: str | Path) -> ScoreClassifier:
    """A classifier *named* by the user: ``inception``; a shipped name (``mnist-robust``,
    ``mnist-clean``, ``cifar10-small``); the name of a file in the cache (``mnist5k`` for
    ``<cache>/mnist5k.pt``, or ``cache:NAME``); or a path to a classifier file."""
    text = str(spec)
    if text == "inception":
        from .inception import inception_classifier

        return inception_classifier()
    if text in SHIPPED_CLASSIFIERS:
        path = shipped_weights(text)
        if path is None:
            raise FlowganError(f"the shipped classifier {text} is missing from {WEIGHTS_DIR} (a broken installation?)")
        return load_classifier(path, source="shipped", name=text)
    if text.startswith("cache:") or _is_plain_name(text):
        name = text[6:] if text.startswith("cache:") else text
        cached = default_classifier_dir() / f"{name}.pt"
        if cached.is_file():
            return load_classifier(cached, source="cache", name=name)
        if text.startswith("cache:") or not Path(text).expanduser().is_file():
            raise FlowganError(
                f"no classifier named {text!r}: shipped {', '.join(SHIPPED_CLASSIFIERS)}; in the cache "
                f"({default_classifier_dir()}) {', '.join(cached_classifiers()) or 'none'}; or give a path to a classifier file"
            )
    return load_classifier(text, source="path")


def find_classifier(dataset, classifier: str | Path | ScoreClassifier | None = None) -> ScoreClassifier:
    """The classifier for ``dataset``: ``classifier`` if given (a loaded one, or a name or path,
    see :func:`resolve_classifier`), else the *shipped* default of the dataset's family
    (:data:`DEFAULT_CLASSIFIERS`). A cached or user-trained classifier is used only when named:
    the same command scores the same way on every machine. With no shipped default, a
    :class:`FlowganError` says how to train and name one."""
    if isinstance(classifier, ScoreClassifier):
        return classifier
    if classifier is not None:
        return resolve_classifier(classifier)
    family = classifier_family(dataset)
    if family in DEFAULT_CLASSIFIERS:
        return resolve_classifier(DEFAULT_CLASSIFIERS[family])
    name = dataset if isinstance(dataset, str) else dataset.name
    stem = Path(name).stem if name.endswith(".npz") else name
    have = cached_classifiers()
    hint = f" (the cache has {', '.join(have)})" if have else ""
    raise FlowganError(
        f"no shipped classifier for {name} (family {family}); train one with: flowgan classifier train --dataset {name}, "
        f"then name it: --classifier {stem}{hint}"
    )


def list_classifiers() -> list[dict[str, Any]]:
    """What ``flowgan classifier list`` shows: every shipped and cached classifier, with its
    provenance, and which family each shipped one is the default of."""
    defaults = {v: k for k, v in DEFAULT_CLASSIFIERS.items()}
    rows = []
    entries = [(n, "shipped", shipped_weights(n)) for n in SHIPPED_CLASSIFIERS] + [(n, "cache", p) for n, p in cached_classifiers().items()]
    for name, source, path in entries:
        row: dict[str, Any] = {"name": name if source == "shipped" or name not in SHIPPED_CLASSIFIERS else f"cache:{name}", "source": source, "path": str(path) if path else None}
        if source == "shipped":
            row["default_for"] = defaults.get(name)
        try:
            clf = load_classifier(path, source=source, name=name) if path else None
        except FlowganError as e:
            row["error"] = str(e)
            clf = None
        if clf is not None:
            row.update(trained_on=clf.trained_on, test_accuracy=clf.test_accuracy, sha256=clf.sha256, augment=clf.info.get("augment"))
        elif path is None:
            row["error"] = "file missing"
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# training


def cache_name(dataset) -> str:
    """The name ``flowgan classifier train`` gives a classifier of ``dataset`` (its file in the
    cache is ``<cache>/<name>.pt``; use it with ``--classifier <name>``): the dataset's name."""
    name = dataset if isinstance(dataset, str) else dataset.name
    return Path(name).stem if name.endswith(".npz") else name


AUGMENTS = ("standard", "flow")


def _augment_text_standard(shift: int, flip: bool) -> str:
    return f"dequantized (k + u)/256 with fresh noise, shifts of up to {shift} px" + (", horizontal flips" if flip else "")


def _augment_text_flow(shift: int, flip: bool) -> str:
    from .noise import describe_flow_augment

    return describe_flow_augment() + f" (shifts of up to {shift} px" + (", flips)" if flip else ")")


AUGMENT_TEXT = {"standard": _augment_text_standard, "flow": _augment_text_flow}

DEFAULT_EPOCHS = {"mnist": 8, "mnist5k": 40, "fashion-mnist": 15, "cifar10": 60, "digits": 60}


def _default_epochs(dataset) -> int:
    if dataset.name in DEFAULT_EPOCHS:
        return DEFAULT_EPOCHS[dataset.name]
    n = len(dataset.train)
    return int(min(60, max(8, math.ceil(400_000 / max(n, 1)))))


def _augment(x: torch.Tensor, shift: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random translations by up to ``shift`` pixels (zero padding) and horizontal flips."""
    n, c, h, w = x.shape
    if flip:
        f = torch.rand(n, generator=gen) < 0.5
        x = torch.where(f.view(-1, 1, 1, 1), x.flip(-1), x)
    if shift:
        padded = F.pad(x, (shift, shift, shift, shift))
        dx = torch.randint(0, 2 * shift + 1, (n,), generator=gen).tolist()
        dy = torch.randint(0, 2 * shift + 1, (n,), generator=gen).tolist()
        x = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    return x


def _dequantized(images: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """``(k + u)/256``: fresh noise from ``gen``, or the fixed evaluation noise (seed 0) of
    :func:`flowgan.likelihood.dequantization_noise` when ``gen`` is None."""
    from ..likelihood import dequantization_noise, dequantize

    if gen is None:
        noise = dequantization_noise(0, len(images), tuple(images.shape[1:]), 0, torch.float32)
    else:
        noise = torch.rand(images.shape, generator=gen, dtype=torch.float32)
    return dequantize(images, noise)


@torch.no_grad()
def accuracy(clf: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device | str = "cpu", batch_size: int = 1000) -> float:
    """Top-1 accuracy on uint8 ``images`` (dequantized with the fixed evaluation noise)."""
    was = clf.training
    clf.eval()
    correct = 0
    try:
        for s in range(0, len(images), batch_size):
            x = _dequantized(images[s : s + batch_size]).to(device)
            correct += int((clf(x).argmax(1).cpu() == labels[s : s + batch_size]).sum())
    finally:
        clf.train(was)
    return correct / max(len(images), 1)


def train_classifier(
    dataset,
    *,
    epochs: int | None = None,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 5e-4,
    seed: int = 0,
    device: torch.device | str = "cpu",
    arch: str | None = None,
    arch_options: dict | None = None,
    augment: str = "standard",
    log: Callable[[str], None] | None = None,
) -> tuple[Classifier, dict[str, Any]]:
    """Train the classifier for ``dataset`` (labels required); returns the module (the state with
    the best validation accuracy) and its metadata, test accuracy included.

    AdamW with a one-cycle learning-rate schedule; inputs are dequantized with fresh noise every
    batch, translated by up to 2 pixels (4 for colour images, which are also flipped).
    ``augment="flow"`` adds the flow-like pixel noise of :func:`.noise.flow_augment` (additive
    Gaussian, salt-and-pepper, logit-space noise, blur, re-quantisation) to every batch: the
    noise-robust MNIST score classifier.
    """
    from . import noise as N

    if augment not in AUGMENTS:
        raise FlowganError(f"unknown augmentation {augment!r}; choose from {', '.join(AUGMENTS)}")
    if dataset.train.labels is None or dataset.num_classes is None:
        raise FlowganError(f"{dataset.name} has no labels: a classifier cannot be trained on it")
    device = torch.device(device)
    shape = tuple(dataset.shape)
    epochs = int(epochs or _default_epochs(dataset))
    if epochs < 1:
        raise FlowganError("epochs must be >= 1")
    if arch is None:
        arch, default_options = default_arch(shape)
        arch_options = {**default_options, **(arch_options or {})}
    arch_options = dict(arch_options or {})
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    # normalisation from the training images (dequantized: (k + 0.5)/256 on average)
    x_all = (dataset.train.images.to(torch.float32) + 0.5) / 256.0
    mean = x_all.mean(dim=(0, 2, 3)).tolist()
    std = x_all.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
    del x_all
    clf = build_classifier(arch, shape, dataset.num_classes, mean, std, **arch_options).to(device)
    colour = shape[0] == 3
    shift, flip = (4 if colour else 2), colour
    n = len(dataset.train)
    steps_per_epoch = max(1, n // batch_size)
    opt = torch.optim.AdamW(clf.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.15)
    images, labels = dataset.train.images, dataset.train.labels
    best = (-1.0, None, 0)
    start = time.perf_counter()
    history = []
    for epoch in range(epochs):
        clf.train()
        perm = torch.randperm(n, generator=gen)
        total_loss = 0.0
        for b in range(steps_per_epoch):
            idx = perm[b * batch_size : (b + 1) * batch_size]
            x = _augment(_dequantized(images[idx], gen), shift, flip, gen)
            if augment == "flow":
                x = N.flow_augment(x, gen)
            x = x.to(device)
            y = labels[idx].to(device)
            loss = F.cross_entropy(clf(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += float(loss.detach())
        val_acc = accuracy(clf, dataset.val.images, dataset.val.labels, device) if dataset.val.labels is not None and len(dataset.val) else float("nan")
        rec = {"epoch": epoch + 1, "loss": total_loss / steps_per_epoch, "val_accuracy": val_acc}
        noisy = ""
        if augment == "flow" and dataset.val.labels is not None and len(dataset.val):
            rec["val_accuracy_gaussian_0.3"] = accuracy(clf, N.noisy_uint8(dataset.val.images, "gaussian", 0.3, seed=1), dataset.val.labels, device)
            noisy = f", with Gaussian noise σ=0.3 {100 * rec['val_accuracy_gaussian_0.3']:.2f}%"
        history.append(rec)
        if log:
            log(f"epoch {epoch + 1}/{epochs}: loss {total_loss / steps_per_epoch:.4f}, val accuracy {100 * val_acc:.2f}%{noisy} ({time.perf_counter() - start:.0f} s)")
        if not (val_acc <= best[0]):  # also true for nan (no validation labels): keep the last
            best = (val_acc, {k: v.detach().clone() for k, v in clf.state_dict().items()}, epoch + 1)
    clf.load_state_dict(best[1])
    clf.eval()
    seconds = time.perf_counter() - start
    test_acc = accuracy(clf, dataset.test.images, dataset.test.labels, device) if dataset.test.labels is not None else None
    meta = {
        "arch": arch,
        "arch_options": arch_options,
        "family": classifier_family(dataset),
        "name": cache_name(dataset),
        "trained_on": f"{dataset.name} ({n} training images)",
        "dataset": dataset.name,
        "train_images": n,
        "shape": list(shape),
        "num_classes": int(dataset.num_classes),
        "normalization": {"mean": mean, "std": std},
        "input": INPUT_CONVENTION,
        "augment": augment,
        "augmentation": AUGMENT_TEXT[augment](shift, flip),
        "test_accuracy": test_acc,
        "test_images": len(dataset.test),
        "val_accuracy": None if math.isnan(best[0]) else best[0],
        "best_epoch": best[2],
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "train_seconds": round(seconds, 1),
        "history": history,
    }
    return clf.cpu(), meta
