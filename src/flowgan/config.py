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
#: sample scores a run can compute at each evaluation (flowgan.metrics.registry.SCORES)
SCORE_METRICS = ("is", "mode", "fid", "kid")


def option(default: Any = MISSING, *, help: str, factory: Any = MISSING, **flag: Any) -> Any:
    """A :class:`TrainConfig` field and its ``flowgan train`` flag, declared together.

    The flag's type comes from the field's annotation (``int``, ``float``, ``str``; ``bool``: a
    switch; ``dict``: repeatable ``KEY=VALUE``; ``tuple``: comma-separated), its default is "not
    given" (the preset's or the model family's value, else the field's default). ``flag``
    (default ``--field-name``), ``aliases``, ``choices``, ``metavar``; ``scale``: the flag's value
    times ``scale`` is the field's; ``resumable``: ``flowgan train --resume`` may change it;
    ``shortcuts``: ``{flag: (key, choices, help)}``, flags that set one key of a dict field.
    """
    return field(default=default, default_factory=factory, metadata={"help": help, **flag})


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. Each field carries its ``flowgan train`` flag
    (:func:`option`; the flags are built by :mod:`flowgan.options`)."""

    # data and model
    dataset: str = option(
        "mnist5k", help="mnist, fashion-mnist, cifar10, mnist5k (offline default), digits, or a path to a .npz"
    )
    data_dir: str | None = option(
        None, help="folder with the dataset files (default $FLOWGAN_DATA or ~/.cache/flowgan/data)"
    )
    model: str = option(
        "nice-small",
        help="nice-mnist, nice-small, realnvp-cifar10, realnvp-small, or an import path pkg.module:factory "
        "(or file.py:factory) called as factory(shape, **model options) (docs/generators.md)",
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
    lam: float = option(0.0, aliases=("--lambda",), help="hybrid weight λ of the NLL term (Eq. 7); 0 = pure ADV")
    critic: str = option(
        "auto",
        help="dcgan-mnist, dcgan-cifar10, dcgan-small, dcgan-cifar10-small (default: by data shape), or an import "
        "path pkg.module:factory called as factory(shape, **critic options)",
    )
    critic_options: dict = option(
        factory=dict, flag="--critic-option", help="override a critic option, e.g. hidden=256 (repeatable)"
    )
    n_critic: int = option(5, help="critic updates per generator update (default 5)")
    gp_weight: float = option(10.0, help="gradient-penalty weight (default 10)")
    # optimisation. epochs and max_steps given: the smaller wins; neither: one epoch (or until time_limit)
    epochs: float | None = option(None, resumable=True, help="passes over the training data")
    max_steps: int | None = option(None, resumable=True, help="stop after this many generator updates")
    time_limit: float | None = option(  # seconds in the config, minutes on the command line
        None,
        flag="--max-minutes",
        scale=60.0,
        resumable=True,
        help="end the run after this much wall time (summed over resumes)",
    )
    batch_size: int = option(100, help="images per batch (default: 100 for NICE, 64 for Real-NVP)")
    lr: float = option(1e-4, help="learning rate (Adam)")
    beta1: float = option(0.5, help="Adam's β1 (default: 0.5 for NICE, 0.9 for Real-NVP)")
    beta2: float = option(0.9, help="Adam's β2 (default 0.9)")
    lr_decay: float = option(1.0, help="learning-rate factor per generator update")
    min_lr: float = option(0.0, help="the decayed learning rate stops at this floor (default 0)")
    critic_lr: float | None = option(None, help="learning rate of the critic (default: --lr)")
    critic_beta1: float | None = option(None, help="β1 of the critic's Adam (default: --beta1)")
    critic_beta2: float = option(0.9, help="β2 of the critic's Adam (default 0.9)")
    seed: int = option(0, help="random seed (default 0)")
    # evaluation and logging
    eval_every: int = option(500, help="generator updates between evaluations")
    eval_samples: int | None = option(None, help="validation images per evaluation (default: all)")
    train_eval_samples: int = option(
        2000, help="training images whose exact NLL is logged at each evaluation (default 2000)"
    )
    eval_batch_size: int = option(1000, help="images per batch of the NLL evaluations (default 1000)")
    score_metrics: tuple = option(
        (), flag="--scores", help="comma-separated sample scores at each evaluation, e.g. mode or is"
    )
    score_samples: int = option(2000, help="samples per score evaluation")
    score_classifier: str | None = option(
        None,
        help="classifier of the scores (default: the dataset's shipped one); a name from `flowgan classifier list` "
        "or a path",
    )
    grid_samples: int = option(64, help="samples in the grid written at each evaluation (default 64)")
    collapse_samples: int = option(
        1000, help="samples of the collapse diagnostics at each evaluation (default 1000; 0: none)"
    )
    log_every: int = option(50, help="generator updates between logged training losses (default 50)")
    # system
    device: str = option("auto", help="auto (default), cpu, cuda, cuda:1, ...")
    precision: str = option("fp32", choices=("fp32", "bf16"), help="bf16 autocast for training (NLL always in float32)")
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
        problems = []

        def finite(v) -> bool:  # NaN fails every comparison: check it explicitly
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        if self.objective not in OBJECTIVES:
            problems.append(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.batch_size < 1:
            problems.append("batch size must be positive")
        if not (finite(self.lr) and self.lr > 0):
            problems.append(f"learning rate must be a positive number, got {self.lr}")
        if not (finite(self.lam) and self.lam >= 0):
            problems.append(f"lambda must be a number >= 0, got {self.lam}")
        if self.epochs is not None and not (finite(self.epochs) and self.epochs > 0):
            problems.append(f"epochs must be a positive number, got {self.epochs}")
        if self.max_steps is not None and self.max_steps < 0:
            problems.append("max_steps must be >= 0")
        if self.collapse_samples < 0 or self.collapse_samples == 1:
            problems.append("collapse_samples must be 0 (off) or at least 2")
        if self.time_limit is not None and not (self.time_limit >= 0):  # inf: no limit
            problems.append(
                "the time limit (--max-minutes) must be >= 0, got "
                f"{self.time_limit / 60 if finite(self.time_limit) else self.time_limit} minutes"
            )
        if not (finite(self.lr_decay) and 0 < self.lr_decay <= 1):
            problems.append(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if not (finite(self.min_lr) and self.min_lr >= 0):
            problems.append(f"min_lr must be a number >= 0, got {self.min_lr}")
        if self.critic_lr is not None and not (finite(self.critic_lr) and self.critic_lr > 0):
            problems.append(f"critic_lr must be a positive number, got {self.critic_lr}")
        for name in ("beta1", "beta2", "critic_beta1", "critic_beta2"):
            value = getattr(self, name)
            if value is not None and not (finite(value) and 0 <= value < 1):
                problems.append(f"{name} must be in [0, 1), got {value}")
        if not (finite(self.gp_weight) and self.gp_weight >= 0):
            problems.append(f"gp_weight must be a number >= 0, got {self.gp_weight}")
        if self.eval_every < 1:
            problems.append("eval_every must be >= 1")
        if self.eval_samples is not None and self.eval_samples < 1:
            problems.append(
                f"eval_samples must be >= 1 (omit it to evaluate the whole validation split), got {self.eval_samples}"
            )
        for name in ("train_eval_samples", "eval_batch_size", "grid_samples", "log_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seed < 0:
            problems.append(f"seed must be >= 0, got {self.seed}")
        unknown = [s for s in self.score_metrics if s not in SCORE_METRICS]
        if unknown:
            problems.append(f"unknown score(s) {', '.join(map(str, unknown))}; choose from {', '.join(SCORE_METRICS)}")
        if self.score_metrics and self.score_samples < 2:
            problems.append(f"score_samples must be >= 2, got {self.score_samples}")
        if self.n_critic < 1 and self.objective != "mle":
            problems.append("n_critic must be >= 1 for adversarial objectives")
        if self.precision not in ("fp32", "bf16"):
            problems.append(f"precision must be fp32 or bf16, got {self.precision!r}")
        if self.on_nonfinite not in ("stop", "rollback"):
            problems.append(f"on_nonfinite must be stop or rollback, got {self.on_nonfinite!r}")
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
