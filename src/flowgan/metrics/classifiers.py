r"""The pretrained classifiers behind the sample scores: files, names and lookup.

The scores need a classifier ``p(y|x)`` (IS, MODE) and a feature map (FID, KID); flowgan's own
networks are in :mod:`.classifier_nets`, their training in :mod:`.classifier_training` (on
*dequantized* images ``(k + u)/256``, the continuous images the flow's likelihood sees, Appendix
A; ``augment="flow"`` adds the pixel noise of flow samples, :func:`.noise.flow_augment`), a loaded
classifier is a :class:`~.score_classifier.ScoreClassifier`. This module finds them.

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
CIFAR-10-shaped data ``cifar10-distilled`` (the 3,600 training images of cifar10-5k only, with the
same pixel noise, distilled from the ensemble of the next two); see ``weights/README.md``. Other
shipped names: ``mnist-clean`` (full MNIST, clean digits only), ``cifar10-robust`` (cifar10-5k
with pixel noise, the default before), ``cifar10-small`` (cifar10-5k, clean images: blind to
pixel noise).
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
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import FlowganError
from .classifier_nets import Classifier, build_classifier
from .score_classifier import ScoreClassifier

FORMAT = "flowgan-classifier"
VERSION = 1
WEIGHTS_DIR = Path(__file__).parent / "weights"
#: the classifiers shipped in ``flowgan/metrics/weights``: name (what users type with
#: ``--classifier``) -> (file, family)
SHIPPED_CLASSIFIERS: dict[str, tuple[str, str]] = {
    "mnist-robust": ("mnist_robust_cnn.pt", "mnist"),
    "mnist-clean": ("mnist_cnn.pt", "mnist"),
    "cifar10-distilled": ("cifar10_distilled_resnet.pt", "cifar10"),
    "cifar10-robust": ("cifar10_robust_resnet.pt", "cifar10"),
    "cifar10-small": ("cifar10_resnet.pt", "cifar10"),
}
#: family -> the name of its default classifier: always a shipped one, never the cache
DEFAULT_CLASSIFIERS: dict[str, str] = {"mnist": "mnist-robust", "cifar10": "cifar10-distilled"}


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
            raise FlowganError(
                f"cannot load TorchScript classifier {path}: {type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}"
            ) from None
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
            module = build_classifier(
                rec["arch"],
                tuple(rec["shape"]),
                rec["num_classes"],
                norm["mean"],
                norm["std"],
                **rec.get("arch_options", {}),
            )
        module.load_state_dict(rec["state_dict"])
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
        raise FlowganError(f"classifier file {path} is malformed: {str(e).splitlines()[0][:200]}") from None
    module.eval()
    info = {k: v for k, v in rec.items() if k != "state_dict"}
    return ScoreClassifier(
        module=module, name=name or str(rec.get("name") or f"{rec.get('family', '?')}-{rec['arch']}"),
        source=source, path=str(path), trained_on=str(rec.get("trained_on", "unknown")),
        num_classes=int(rec["num_classes"]), shape=tuple(rec["shape"]),
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


def locate_classifier(spec: str | Path) -> tuple[str, Path | None, str | None]:
    """Where a classifier *named* by the user is, without loading it: ``(source, path, name)``.
    ``inception``; a shipped name (``mnist-robust``, ``mnist-clean``, ``cifar10-distilled``,
    ``cifar10-robust``, ``cifar10-small``); the name of a file in the cache (``mnist5k`` for
    ``<cache>/mnist5k.pt``, or ``cache:NAME``); or a path to a classifier file. A name that is
    none of these raises :class:`FlowganError` (the CLI checks ``--classifier`` with it before
    any work)."""
    text = str(spec)
    if text == "inception":
        return "inception", None, text
    if text in SHIPPED_CLASSIFIERS:
        path = shipped_weights(text)
        if path is None:
            raise FlowganError(f"the shipped classifier {text} is missing from {WEIGHTS_DIR} (a broken installation?)")
        return "shipped", path, text
    if text.startswith("cache:") or _is_plain_name(text):
        name = text.removeprefix("cache:")
        cached = default_classifier_dir() / f"{name}.pt"
        if cached.is_file():
            return "cache", cached, name
        if text.startswith("cache:") or not Path(text).expanduser().is_file():
            raise FlowganError(
                f"no classifier named {text!r}: shipped {', '.join(SHIPPED_CLASSIFIERS)}; in the cache "
                f"({default_classifier_dir()}) {', '.join(cached_classifiers()) or 'none'}; or give a path to a "
                "classifier file"
            )
    path = Path(text).expanduser()
    if not path.is_file():
        raise FlowganError(f"classifier file {text} does not exist")
    return "path", path, None


def resolve_classifier(spec: str | Path) -> ScoreClassifier:
    """The classifier :func:`locate_classifier` finds, loaded."""
    source, path, name = locate_classifier(spec)
    if source == "inception":
        from .inception import inception_classifier

        return inception_classifier()
    return load_classifier(path, source=source, name=name)


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
        f"no shipped classifier for {name} (family {family}); train one with: flowgan classifier train --dataset "
        f"{name}, then name it: --classifier {stem}{hint}"
    )


def list_classifiers() -> list[dict[str, Any]]:
    """What ``flowgan classifier list`` shows: every shipped and cached classifier, with its
    provenance, and which family each shipped one is the default of."""
    defaults = {v: k for k, v in DEFAULT_CLASSIFIERS.items()}
    rows = []
    entries = [(n, "shipped", shipped_weights(n)) for n in SHIPPED_CLASSIFIERS] + [
        (n, "cache", p) for n, p in cached_classifiers().items()
    ]
    for name, source, path in entries:
        row: dict[str, Any] = {
            "name": name if source == "shipped" or name not in SHIPPED_CLASSIFIERS else f"cache:{name}",
            "source": source,
            "path": str(path) if path else None,
        }
        if source == "shipped":
            row["default_for"] = defaults.get(name)
        try:
            clf = load_classifier(path, source=source, name=name) if path else None
        except FlowganError as e:
            row["error"] = str(e)
            clf = None
        if clf is not None:
            row.update(
                trained_on=clf.trained_on,
                test_accuracy=clf.test_accuracy,
                sha256=clf.sha256,
                augment=clf.info.get("augment"),
            )
        elif path is None:
            row["error"] = "file missing"
        rows.append(row)
    return rows


def cache_name(dataset) -> str:
    """The name ``flowgan classifier train`` gives a classifier of ``dataset`` (its file in the
    cache is ``<cache>/<name>.pt``; use it with ``--classifier <name>``): the dataset's name."""
    name = dataset if isinstance(dataset, str) else dataset.name
    return Path(name).stem if name.endswith(".npz") else name
