"""What ``flowgan reproduce`` runs for each preset, and the paper's numbers it is compared with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OBJECTIVES = ("mle", "adv", "hybrid")
LABELS = {"mle": "MLE", "adv": "ADV", "hybrid": "Hybrid"}


@dataclass(frozen=True)
class Preset:
    """A reproduction plan.

    ``runs`` maps each objective to the name of its training preset (:data:`flowgan.config.PRESETS`)
    and ``run_options`` overrides it; ``steps`` is the number of generator updates of *every*
    objective (the paper trains the three for the same number of epochs, and the original code
    draws one batch per generator update): the same command gives the same tables on a busy and an
    idle machine. ``budget_minutes`` is only a safety net: a training stage stops when the whole
    reproduction has used it, and the report then says INCOMPLETE at the top.
    ``training_share`` is the expected share of the time of each training stage, used for the
    ETA before the calibration has measured it. The analysis settings bound the cost of the
    mixture sweep, Table 3 and Figure 4.
    """

    name: str
    description: str
    paper: str  # "mnist" or "cifar10": which of the paper's tables this reproduces
    dataset: str
    budget_minutes: float
    runs: dict[str, str]
    run_options: dict[str, dict[str, Any]]
    training_share: dict[str, float]
    score: str  # "mode" (MNIST) or "is" (CIFAR-10)
    score_samples: int  # samples for the final score of each best-score checkpoint
    unit: str  # the unit of the paper's table: "nats" or "bpd"
    gmm: dict[str, Any] = field(default_factory=dict)
    likelihoods: dict[str, Any] = field(default_factory=dict)
    jacobian: dict[str, Any] = field(default_factory=dict)
    steps: int = 750


# The same number of generator updates for every objective: the paper trains all three for the
# same number of epochs, and the original code draws one batch per generator update.
_SMALL_RUNS = {k: dict(eval_every=75) for k in ("mle", "adv", "hybrid")}

PRESETS: dict[str, Preset] = {
    "quick": Preset(
        name="quick",
        description="mnist5k (4,000 real MNIST digits, offline), small NICE and critic, 750 generator updates per "
        "objective: the whole pipeline in <= 15 minutes on a 2-core CPU",
        paper="mnist",
        dataset="mnist5k",
        budget_minutes=60.0,
        steps=750,
        runs={"mle": "mnist-mle", "adv": "mnist-adv", "hybrid": "mnist-hybrid"},
        run_options={
            k: dict(
                v,
                dataset="mnist5k",
                model="nice-small",
                critic="dcgan-small",
                epochs=None,
                score_samples=1000,
                train_eval_samples=500,
                log_every=20,
            )
            for k, v in _SMALL_RUNS.items()
        },
        training_share={"mle": 0.05, "adv": 0.3, "hybrid": 0.35},
        score="mode",
        score_samples=5000,
        unit="nats",
        gmm=dict(samples_for_scores=1000, refine=2),
        likelihoods=dict(n_test=50, ais_steps=100, ais_chains=4, kde_samples=5000, kde_val=500),
        jacobian=dict(n=64),
    ),
    "mnist": Preset(
        name="mnist",
        description="full MNIST (50k/10k/10k) with the paper's NICE and DCGAN critic, 3,000 generator updates "
        "per objective",
        paper="mnist",
        dataset="mnist",
        budget_minutes=720.0,
        steps=3000,
        runs={"mle": "mnist-mle", "adv": "mnist-adv", "hybrid": "mnist-hybrid"},
        run_options={
            k: dict(eval_every=250, score_samples=2000, eval_samples=2000, train_eval_samples=2000) for k in OBJECTIVES
        },
        training_share={"mle": 0.25, "adv": 0.33, "hybrid": 0.33},
        score="mode",
        score_samples=10000,
        unit="nats",
        gmm=dict(samples_for_scores=2000, refine=3, val_samples=2000, test_samples=10000),
        likelihoods=dict(n_test=100, ais_steps=200, ais_chains=4, kde_samples=10000, kde_val=1000),
        jacobian=dict(n=64),
    ),
    "cifar10-5k": Preset(
        name="cifar10-5k",
        description="cifar10-5k (5,000 real CIFAR-10 images, 3,600/400/1,000), small Real-NVP and critic, 400 "
        "generator updates per objective: the CIFAR-10 analog (claim C6), sized for about 90 minutes on a 2-core CPU",
        paper="cifar10",
        dataset="cifar10-5k",
        budget_minutes=150.0,
        steps=400,
        runs={"mle": "cifar10-mle", "adv": "cifar10-adv", "hybrid": "cifar10-hybrid"},
        run_options={
            k: dict(
                dataset="cifar10-5k",
                model="realnvp-small",
                critic="dcgan-cifar10-small",
                epochs=None,
                eval_every=100,
                score_samples=1000,
                train_eval_samples=400,
                log_every=20,
            )
            for k in OBJECTIVES
        },
        training_share={"mle": 0.15, "adv": 0.3, "hybrid": 0.35},
        score="is",
        score_samples=2000,
        unit="bpd",
        gmm=dict(samples_for_scores=1000, refine=2, val_samples=400, test_samples=1000),
        likelihoods=dict(n_test=10, ais_steps=50, ais_chains=4, kde_samples=2000, kde_val=400),
        jacobian=dict(n=4),
    ),
    "cifar10": Preset(
        name="cifar10",
        description="CIFAR-10 (45k/5k/10k) with the paper's Real-NVP and critic, 10,000 generator updates per "
        "objective (a GPU is advised)",
        paper="cifar10",
        dataset="cifar10",
        budget_minutes=1440.0,
        steps=10000,
        runs={"mle": "cifar10-mle", "adv": "cifar10-adv", "hybrid": "cifar10-hybrid"},
        run_options={
            k: dict(eval_every=1000, score_samples=2000, eval_samples=2000, train_eval_samples=2000) for k in OBJECTIVES
        },
        training_share={"mle": 0.3, "adv": 0.3, "hybrid": 0.3},
        score="is",
        score_samples=10000,
        unit="bpd",
        gmm=dict(samples_for_scores=2000, refine=3, val_samples=1000, test_samples=2000),
        likelihoods=dict(n_test=50, ais_steps=100, ais_chains=4, kde_samples=10000, kde_val=1000),
        jacobian=dict(n=16),
    ),
}

#: The paper's numbers (Tables 1-3, §5.1 and Appendix D).
PAPER: dict[str, dict[str, Any]] = {
    "mnist": {
        "score_name": "MODE",
        "table": {  # Table 1: best MODE score, test NLL in nats
            "mle": {"score": 7.42, "nll": -3334.56},
            "adv": {"score": 9.24, "nll": -1604.09},
            "hybrid": {"score": 9.37, "nll": -3342.95, "lam": 0.1},
        },
        "table3": {  # Table 3: NLL in nats, exact / AIS / KDE
            "mle": {"exact": -3287.69, "ais": -2584.40, "kde": -167.10},
            "adv": {"exact": 26350.30, "ais": -2916.10, "kde": -3.03},
            "hybrid": {"exact": -3121.53, "ais": -2703.03, "kde": -205.69},
        },
        "mean_logdet": {"mle": -4170.34, "adv": -15588.34, "hybrid": -5184.40},  # §5.1
    },
    "cifar10": {
        "score_name": "Inception",
        "table": {  # Table 2: best Inception score, test NLL in bits/dim
            "mle": {"score": 2.92, "nll": 3.54},
            "adv": {"score": 5.76, "nll": 8.53},
            "hybrid": {"score": 3.90, "nll": 4.21, "lam": 1.0},
        },
        "mean_logdet": {"mle": -12818.84, "adv": -21848.09, "hybrid": -14729.51},  # Appendix D
    },
}
