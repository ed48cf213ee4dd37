"""A loaded score classifier: the module, what it is, where it came from, and its predictions.

:class:`ScoreClassifier` is what every score takes (:mod:`.evaluate`, :mod:`.collapse`,
:mod:`.noise`): flowgan's own networks (:mod:`.classifier_nets`, loaded by :mod:`.classifiers`),
a TorchScript module, or Inception-v3 (:mod:`.inception`). :meth:`ScoreClassifier.predict`
gives float64 logits and features; :meth:`ScoreClassifier.summary` what every score JSON records
about the classifier (name, training data, clean test accuracy, a short content hash).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import FlowganError
from .classifier_nets import Classifier


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
        if self.source == "shipped" and self.path:  # the package's own file: where it lies here is not the point
            where = "flowgan/metrics/weights/" + Path(self.path).name
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
        self,
        images: torch.Tensor,
        *,
        features: bool = False,
        batch_size: int = 500,
        device: torch.device | str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (and features) of ``images`` in ``[0, 1]``, as float64 CPU tensors.

        The module runs in eval mode and float32, in batches, on ``device`` (default: where its
        parameters are); its previous train/eval mode is restored.
        """
        device = torch.device(device) if device is not None else _module_device(self.module)
        if self.shape is not None and tuple(images.shape[1:]) != tuple(self.shape):
            raise FlowganError(
                f"the {self.name} classifier expects images of shape {tuple(self.shape)}, got "
                f"{tuple(images.shape[1:])}; pass a classifier for this data with --classifier"
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
                    raise FlowganError(
                        f"classifier {self.name} failed on images of shape {tuple(x.shape[1:])}: {first[:200]}"
                    ) from None
                if lg.dim() != 2:
                    raise FlowganError(
                        f"classifier {self.name} returned logits of shape {tuple(lg.shape)}, expected (N, classes)"
                    )
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
