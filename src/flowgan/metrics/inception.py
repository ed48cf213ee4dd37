"""The real Inception-v3 (``--classifier inception``), through torch-fidelity, when its weights can be had.

torch-fidelity's ``inception-v3-compat`` is the network of the original TensorFlow Inception
score / FID code (the one torchmetrics' ``InceptionScore``, ``FrechetInceptionDistance`` and
``KernelInceptionDistance`` use by default). Its weights, ``weights-inception-2015-12-05-6726825d.pth``,
are downloaded by torch-fidelity into ``$TORCH_HOME/hub/checkpoints`` on first use; offline they
must already be there (or at ``$FLOWGAN_INCEPTION_WEIGHTS``): flowgan then fails with one line that
names the missing file rather than trying the network.

Used as a :class:`~.score_classifier.ScoreClassifier`: images in ``[0, 1]`` become uint8 as torchmetrics
does with ``normalize=True`` (``(x·255)`` truncated), grey-scale images are repeated to 3 channels,
the network resizes to 299×299; IS uses its 1008 ``logits_unbiased``, FID/KID its 2048-d pool
features. The MODE score is not available with it (its classes are not the dataset's labels).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import FlowganError

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + WEIGHTS_FILE


def inception_weights_path() -> Path:
    """``$FLOWGAN_INCEPTION_WEIGHTS``, else torch hub's ``checkpoints/`` + the torch-fidelity file name."""
    env = os.environ.get("FLOWGAN_INCEPTION_WEIGHTS")
    if env:
        return Path(env).expanduser()
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def inception_classifier():
    """A :class:`~.score_classifier.ScoreClassifier` for torch-fidelity's Inception-v3, or a
    :class:`FlowganError` naming what is missing (the package or the weights file)."""
    import torch

    from .score_classifier import ScoreClassifier

    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError:
        raise FlowganError(
            "--classifier inception needs torch-fidelity (pip install torch-fidelity); it is not installed"
        ) from None
    path = inception_weights_path()
    if not path.is_file():
        raise FlowganError(
            f"Inception-v3 weights not found: {path} is missing (torch-fidelity's {WEIGHTS_FILE}, from {WEIGHTS_URL}); "
            "download it there or set FLOWGAN_INCEPTION_WEIGHTS, or leave out --classifier "
            "to use flowgan's offline classifier"
        )
    try:
        net = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(path)
        )
    except Exception as e:
        raise FlowganError(
            f"cannot load the Inception-v3 weights {path}: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}"
        ) from None
    net.eval()

    def run(x: torch.Tensor, features: bool):
        u8 = (x.clamp(0, 1) * 255).to(torch.uint8)
        if u8.shape[1] == 1:
            u8 = u8.repeat(1, 3, 1, 1)
        pool, logits = net.to(x.device)(u8)
        return logits.reshape(len(x), -1), pool.reshape(len(x), -1)

    return ScoreClassifier(
        module=net, name="inception-v3-compat", source="inception", path=str(path),
        trained_on="ImageNet (Inception-v3, TF 2015-12-05 weights via torch-fidelity)", num_classes=1008, shape=None,
        key="inception-v3-compat-2015-12-05", run=run,
    )  # fmt: skip
