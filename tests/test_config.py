"""TrainConfig and its command-line flags: every field reachable from ``flowgan train``, every
flag value reaching the config, the flags users already type still there."""

import dataclasses

import pytest

from flowgan.cli import build_parser, main
from flowgan.config import TrainConfig, resolve_config
from flowgan.options import config_flags, config_options, excluded_fields

#: ``flowgan train``'s flags before they were generated from TrainConfig (public interface)
FLAGS_OF_0_2 = (
    "--preset --dataset --data-dir --model --model-option --coupling-norm --objective --lam --lambda --critic "
    "--n-critic --gp-weight --epochs --max-steps --max-minutes --batch-size --lr --beta1 --beta2 --lr-decay --seed "
    "--eval-every --eval-samples --scores --score-samples --score-classifier --device --precision --compile "
    "--sync-batchnorm --on-nonfinite --out --resume --no-progress"
).split()

#: values for string fields that the config checks (any other string will do for the rest)
VALID = {
    "model": "realnvp-small",
    "objective": "wgan-gp",
    "preset": "mnist-adv",
    "score_metrics": "is,mode",
    "dataset": "digits",
    "score_classifier": "mnist-clean",
    "device": "cpu",
}


def _parse(*argv):
    return build_parser().parse_args(["train", *argv])


def _config(*argv) -> TrainConfig:
    return resolve_config(**config_options(_parse(*argv)))


def _flag_value(flag, default):
    """A command-line value for ``flag`` that differs from the field's default, and what the
    config should hold then."""
    if flag.field in VALID:
        text = VALID[flag.field]
        return text, tuple(text.split(",")) if flag.kind is tuple else text
    if flag.choices:
        text = next(c for c in flag.choices if c != default)
        return text, text
    if flag.kind is int:
        return str((default or 1) + 2), (default or 1) + 2
    if flag.kind is float:
        return "0.25", 0.25 * (flag.scale or 1)
    if flag.kind is dict:
        return "hidden=7", {"hidden": 7}
    return "some-value", "some-value"


def test_every_field_has_a_flag_or_a_reason():
    flagged = {flag.field for flag in config_flags()}
    excluded = excluded_fields()
    assert all(reason.strip() for reason in excluded.values())
    assert flagged | set(excluded) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert not flagged & set(excluded)


@pytest.mark.parametrize("flag", config_flags(), ids=lambda flag: flag.name)
def test_each_flag_value_reaches_the_config(flag):
    default = next(f for f in dataclasses.fields(TrainConfig) if f.name == flag.field).default
    if flag.kind is bool:
        argv, expected = [flag.name], True
    else:
        text, expected = _flag_value(flag, default)
        argv = [flag.name, text]
    config = _config(*argv)
    assert getattr(config, flag.field) == expected != getattr(_config(), flag.field)
    assert getattr(config, flag.field) != default
    for alias in flag.names[1:]:
        assert getattr(_config(alias, *argv[1:]), flag.field) == expected


def test_the_flags_users_type_are_all_there(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    help_text = capsys.readouterr().out
    missing = [flag for flag in FLAGS_OF_0_2 if f"{flag} " not in help_text and f"{flag}\n" not in help_text]
    assert not missing
    for flag in config_flags():
        assert flag.name in help_text and flag.help and flag.help.split()[0] in help_text


def test_flags_keep_their_meaning():
    assert _config("--lambda", "0.5").lam == _config("--lam", "0.5").lam == 0.5
    assert _config("--max-minutes", "2").time_limit == 120.0  # minutes on the command line, seconds in the config
    assert _config("--scores", "mode,,is").score_metrics == ("mode", "is")
    assert _config("--coupling-norm", "none").model_options == {"norm": "none"}
    assert _config("--model-option", "hidden=5", "--model-option", "norm=none").model_options == {
        "hidden": 5,
        "norm": "none",
    }
    assert _config("--compile", "--sync-batchnorm").compile is True
    # not given: the preset's, then the model family's values, then the field's
    assert (
        _config("--preset", "cifar10-mle").lr == 1e-3 and _config("--preset", "cifar10-mle", "--lr", "0.01").lr == 0.01
    )
    assert _config("--model", "realnvp-small").batch_size == 64 and _config().batch_size == 100
    assert _config() == resolve_config()


def test_critic_settings_reach_the_config():
    config = _config(
        "--critic-lr",
        "3e-4",
        "--critic-beta1",
        "0.1",
        "--critic-beta2",
        "0.8",
        "--min-lr",
        "1e-6",
        "--critic-option",
        "hidden=64",
    )
    assert (config.critic_lr, config.critic_beta1, config.critic_beta2, config.min_lr) == (3e-4, 0.1, 0.8, 1e-6)
    assert config.critic_options == {"hidden": 64}


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--coupling-norm", "none", "--model-option", "norm=batch"],
            "--coupling-norm and --model-option norm=... disagree",
        ),
        (["--critic-beta1", "1.5"], "argument --critic-beta1: must be in [0, 1), got 1.5"),
        (["--min-lr", "-1"], "argument --min-lr: must be >= 0, got -1"),
        (["--log-every", "0"], "argument --log-every: must be >= 1, got 0"),
        (["--precision", "fp16"], "invalid choice"),
        (["--model-option", "hidden"], "expected KEY=VALUE"),
    ],
)
def test_bad_flag_values_are_one_line_errors(capsys, tmp_path, argv, message):
    try:
        code = main(["train", *argv, "--out", str(tmp_path / "r")])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err
    assert not (tmp_path / "r").exists()


def test_config_round_trips_through_its_dict():
    config = _config("--preset", "mnist-hybrid", "--scores", "mode,is", "--model-option", "hidden=5")
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig.from_dict({**config.to_dict(), "a_field_of_the_future": 1}) == config
