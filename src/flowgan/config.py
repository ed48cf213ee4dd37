"""Training configuration: one frozen dataclass, presets with the paper's hyperparameters.

Where the values come from (the paper's Appendix A points to the README of the original code,
ermongroup/flow-gan, for the hyperparameters):

* MNIST / NICE: Adam, lr 1e-4, β1 0.5, batch 100, logit a = 1e-7, logistic prior.
* CIFAR-10 / Real-NVP, MLE: Adam lr 1e-3, β1 0.9, batch 64, lr decay 0.999995 per step.
* The original used β2 = 0.9 for every optimizer (generator and critic); so do we.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import MISSING, dataclass, field
from typing import Any

from .errors import FlowganError

OBJECTIVES = ("mle", "wgan-gp", "ce", "kl", "rkl", "hellinger", "tv", "lsgan")
#: training precisions; "auto" is resolved when a run starts (flowgan.runtime.resolve_precision)
PRECISIONS = ("fp32", "bf16", "auto")
#: sample scores a run can compute at each evaluation (flowgan.metrics.registry.SCORES)
SCORE_METRICS = ("is", "mode", "fid", "kid")


@dataclass(frozen=True)
class Bound:
    """The values a numeric field (and its flag) admits: ``low``/``high``, each inclusive unless
    ``*_open``; NaN always refused, infinities unless ``finite=False``. One declaration checks both
    :class:`TrainConfig` and its ``flowgan train`` flag (:func:`flowgan.options.add_config_flags`)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    finite: bool = True

    def admits(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return False
        if self.finite and math.isinf(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def __str__(self) -> str:
        low, high = (v if v is None or isinstance(v, int) else f"{v:g}" for v in (self.low, self.high))
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {low}"
        return f"{'<' if self.high_open else '<='} {high}"


POSITIVE = Bound(0, low_open=True)
NON_NEGATIVE = Bound(0)
AT_LEAST_1 = Bound(1)
BETA = Bound(0, 1, high_open=True)  # Adam's β


def option(default: Any = MISSING, *, help: str, factory: Any = MISSING, **flag: Any) -> Any:
    """A :class:`TrainConfig` field and its ``flowgan train`` flag, declared together.

    The flag's type comes from the field's annotation (``int``, ``float``, ``str``; ``bool``: a
    switch; ``dict``: repeatable ``KEY=VALUE``; ``tuple``: comma-separated), its default is "not
    given" (the preset's or the model family's value, else the field's default). ``flag``
    (default ``--field-name``), ``aliases``, ``choices``, ``metavar``; ``scale``: the flag's value
    times ``scale`` is the field's; ``resumable``: ``flowgan train --resume`` may change it;
    ``shortcuts``: ``{flag: (key, choices, help)}``, flags that set one key of a dict field;
    ``bound``: the :class:`Bound` of a numeric field, checked by the dataclass and by the flag;
    ``check``: the :mod:`flowgan.options` type that checks a text flag (``dataset``, ``classifier``, ``device``).
    """
    return field(default=default, default_factory=factory, metadata={"help": help, **flag})


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. Each field carries its ``flowgan train`` flag
    (:func:`option`; the flags are built by :mod:`flowgan.options`)."""

    # data and model
    dataset: str = option(
        "mnist5k",
        check="dataset",
        help="mnist, fashion-mnist, cifar10, mnist5k (offline default), digits, or a path to a .npz",
    )
    data_dir: str | None = option(
        None, help="folder with the dataset files (default $FLOWGAN_DATA or ~/.cache/flowgan/data)"
    )
    model: str = option(
        "nice-small",
        help="nice-mnist, nice-small, realnvp-cifar10, realnvp-small, glow-cifar10, glow-mnist, glow-small, or an "
        "import path pkg.module:factory (or file.py:factory) called as factory(shape, **model options) "
        "(docs/generators.md)",
    )
    model_options: dict = option(
        factory=dict,
        flag="--model-option",
        help="override a model option, e.g. hidden=500, or a keyword argument of a --model factory (value: JSON; "
        "repeatable)",
        shortcuts={
            "--coupling-norm": (
                "norm",
                ("batch", "none"),
                "normalisation inside the coupling networks: batch (default; the original code's NICE, Real-NVP's "
                "ResNets) or none (NICE as flowgan built it before; same as --model-option norm=none)",
            )
        },
    )
    # objective: "mle", or an adversarial loss; lam > 0 adds lam * NLL to the generator loss (Eq. 7)
    objective: str = option("mle", help="mle, or an adversarial loss: wgan-gp, ce, kl, rkl, hellinger, tv, lsgan")
    lam: float = option(
        0.0, aliases=("--lambda",), bound=NON_NEGATIVE, help="hybrid weight λ of the NLL term (Eq. 7); 0 = pure ADV"
    )
    critic: str = option(
        "auto",
        help="dcgan-mnist, dcgan-cifar10, dcgan-small, dcgan-cifar10-small (default: by data shape), or an import "
        "path pkg.module:factory called as factory(shape, **critic options)",
    )
    critic_options: dict = option(
        factory=dict, flag="--critic-option", help="override a critic option, e.g. hidden=256 (repeatable)"
    )
    n_critic: int = option(5, bound=AT_LEAST_1, help="critic updates per generator update (default 5)")
    gp_weight: float = option(10.0, bound=NON_NEGATIVE, help="gradient-penalty weight (default 10)")
    # optimisation. epochs and max_steps given: the smaller wins; neither: one epoch (or until time_limit)
    epochs: float | None = option(None, resumable=True, bound=POSITIVE, help="passes over the training data")
    max_steps: int | None = option(
        None, resumable=True, bound=NON_NEGATIVE, help="stop after this many generator updates"
    )
    time_limit: float | None = option(  # seconds in the config, minutes on the command line
        None,
        flag="--max-minutes",
        scale=60.0,
        resumable=True,
        bound=Bound(0, finite=False),  # inf: no limit
        help="end the run after this much wall time (summed over resumes)",
    )
    batch_size: int = option(100, bound=AT_LEAST_1, help="images per batch (default: 100 for NICE, 64 for Real-NVP)")
    lr: float = option(1e-4, bound=POSITIVE, help="learning rate (Adam)")
    beta1: float = option(0.5, bound=BETA, help="Adam's β1 (default: 0.5 for NICE, 0.9 for Real-NVP)")
    beta2: float = option(0.9, bound=BETA, help="Adam's β2 (default 0.9)")
    lr_decay: float = option(1.0, bound=Bound(0, 1, low_open=True), help="learning-rate factor per generator update")
    min_lr: float = option(0.0, bound=NON_NEGATIVE, help="the decayed learning rate stops at this floor (default 0)")
    critic_lr: float | None = option(None, bound=POSITIVE, help="learning rate of the critic (default: --lr)")
    critic_beta1: float | None = option(None, bound=BETA, help="β1 of the critic's Adam (default: --beta1)")
    critic_beta2: float = option(0.9, bound=BETA, help="β2 of the critic's Adam (default 0.9)")
    seed: int = option(0, bound=Bound(0, 2**63 - 1), help="random seed (default 0)")
    # evaluation and logging
    eval_every: int = option(500, bound=AT_LEAST_1, help="generator updates between evaluations")
    eval_samples: int | None = option(None, bound=AT_LEAST_1, help="validation images per evaluation (default: all)")
    train_eval_samples: int = option(
        2000, bound=AT_LEAST_1, help="training images whose exact NLL is logged at each evaluation (default 2000)"
    )
    eval_batch_size: int = option(1000, bound=AT_LEAST_1, help="images per batch of the NLL evaluations (default 1000)")
    score_metrics: tuple = option(
        (), flag="--scores", help="comma-separated sample scores at each evaluation, e.g. mode or is"
    )
    score_samples: int = option(2000, bound=Bound(2), help="samples per score evaluation")
    score_classifier: str | None = option(
        None,
        check="classifier",
        help="classifier of the scores (default: the dataset's shipped one); a name from `flowgan classifier list` "
        "or a path",
    )
    grid_samples: int = option(64, bound=AT_LEAST_1, help="samples in the grid written at each evaluation (default 64)")
    collapse_samples: int = option(
        1000, bound=NON_NEGATIVE, help="samples of the collapse diagnostics at each evaluation (default 1000; 0: none)"
    )
    log_every: int = option(50, bound=AT_LEAST_1, help="generator updates between logged training losses (default 50)")
    # system
    device: str = option("auto", check="device", help="auto (default), cpu, cuda, cuda:1, ...")
    precision: str = option(
        "fp32",
        choices=PRECISIONS,
        help="fp32 (default); bf16: autocast for training (NLL always in float32); auto: bf16 where the device has "
        "bf16 units (a CPU with AMX or AVX512-BF16, a GPU with bf16), else fp32; the run records which it used",
    )
    compile: bool = option(False, help="torch.compile the model and critic")
    # data parallelism: coupling-network batch norm over the global batch (True) or each
    # process's shard (False, the default; see flowgan.distributed)
    sync_batchnorm: bool = option(
        False,
        help="under torchrun: batch-norm statistics of the global batch (default: each process its own shard's)",
    )
    on_nonfinite: str = option(
        "stop",
        choices=("stop", "rollback"),
        help="on NaN/Inf: stop (default) or roll back to the last checkpoint with half the learning rate",
    )
    preset: str | None = option(
        None,
        help="the paper's configurations: mnist-mle, mnist-adv, mnist-hybrid, cifar10-mle, cifar10-adv, cifar10-hybrid",
    )

    def __post_init__(self):
        """Every field checked at once; each problem names the field and its flag."""
        problems = []
        for f in dataclasses.fields(self):
            bound, value = f.metadata.get("bound"), getattr(self, f.name)
            if bound is not None and value is not None and not bound.admits(value):
                problems.append(f"{_named(f)} must be {bound}, got {value}")
        if self.objective not in OBJECTIVES:
            problems.append(f"objective (--objective) must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.collapse_samples == 1:
            problems.append("collapse_samples (--collapse-samples) must be 0 (off) or at least 2, got 1")
        unknown = [s for s in self.score_metrics if s not in SCORE_METRICS]
        if unknown:
            problems.append(
                f"unknown score(s) {', '.join(map(str, unknown))} (--scores); choose from {', '.join(SCORE_METRICS)}"
            )
        for name, allowed in (("precision", PRECISIONS), ("on_nonfinite", ("stop", "rollback"))):
            if getattr(self, name) not in allowed:
                problems.append(f"{name} must be {' or '.join(allowed)}, got {getattr(self, name)!r}")
        if problems:
            raise FlowganError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["score_metrics"] = list(self.score_metrics)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in names}
        if "score_metrics" in values:
            values["score_metrics"] = tuple(values["score_metrics"])
        return cls(**values)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    @property
    def adversarial(self) -> bool:
        return self.objective != "mle"

    def describe(self) -> str:
        what = (
            "MLE" if not self.adversarial else (f"{self.objective} + {self.lam:g}·NLL" if self.lam else self.objective)
        )
        return f"{self.model} on {self.dataset}, {what}"


def _named(f: dataclasses.Field) -> str:
    """``lr (--lr)``: a field and the flag that sets it (:func:`option`)."""
    if "no_flag" in f.metadata:
        return f.name
    flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
    return f"{f.name} ({'seconds; ' if f.metadata.get('scale') else ''}{flag})"


_MNIST = dict(dataset="mnist", model="nice-mnist", lr=1e-4, beta1=0.5, batch_size=100)
_CIFAR = dict(dataset="cifar10", model="realnvp-cifar10", batch_size=64)

#: The paper's configurations (Tables 1 and 2; hyperparameters from the original README).
PRESETS: dict[str, dict[str, Any]] = {
    "mnist-mle": dict(_MNIST, objective="mle", epochs=500, score_metrics=("mode",)),
    "mnist-adv": dict(_MNIST, objective="wgan-gp", lam=0.0, n_critic=5, epochs=500, score_metrics=("mode",)),
    "mnist-hybrid": dict(_MNIST, objective="wgan-gp", lam=0.1, n_critic=5, epochs=500, score_metrics=("mode",)),
    "cifar10-mle": dict(
        _CIFAR, objective="mle", lr=1e-3, beta1=0.9, lr_decay=0.999995, epochs=300, score_metrics=("is",)
    ),
    "cifar10-adv": dict(_CIFAR, objective="wgan-gp", lam=0.0, lr=1e-4, beta1=0.5, epochs=300, score_metrics=("is",)),
    "cifar10-hybrid": dict(
        _CIFAR, objective="wgan-gp", lam=1.0, lr=1e-3, beta1=0.5, lr_decay=0.99999, epochs=500, score_metrics=("is",)
    ),
}

#: Defaults by model family when no preset is given.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "nice": dict(lr=1e-4, beta1=0.5, batch_size=100),
    "realnvp": dict(lr=1e-3, beta1=0.9, batch_size=64, lr_decay=0.999995),
    "glow": dict(lr=1e-3, beta1=0.9, batch_size=64),
}


def resolve_config(preset: str | None = None, **options: Any) -> TrainConfig:
    """Build a :class:`TrainConfig`: defaults, then the model family's, the preset's, then ``options``
    (``None`` values in ``options`` mean "not given")."""
    from .models import MODELS

    given = {k: v for k, v in options.items() if v is not None}
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise FlowganError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
        values["preset"] = preset
    model = given.get("model", values.get("model", TrainConfig.model))
    if ":" in model:  # an import path pkg.module:factory (flowgan.components): no family defaults
        family = {}
    elif model in MODELS:
        family = FAMILY_DEFAULTS[MODELS[model][0]]
    else:
        raise FlowganError(
            f"unknown model {model!r}; choose from {', '.join(sorted(MODELS))} or an import path pkg.module:factory"
        )
    values = {**family, **values, **given}
    try:
        return TrainConfig(**values)
    except TypeError as e:
        raise FlowganError(str(e)) from None
