"""Every flag of every command is checked while the command line is parsed (issue 21): a bad value
is refused with one line naming the flag and exit 2, before any file is read or written."""

import argparse

import pytest

from flowgan.cli import build_parser, main

NO_RUN = "/no/such/run"  # a command that did any work first would complain about this instead

BAD = [
    # train (flags generated from TrainConfig and its Bounds)
    ("train", "--lr", "-1"),
    ("train", "--lr", "nan"),
    ("train", "--lam", "-0.5"),
    ("train", "--batch-size", "0"),
    ("train", "--epochs", "inf"),
    ("train", "--max-steps", "-1"),
    ("train", "--max-minutes", "-2"),
    ("train", "--beta1", "1"),
    ("train", "--critic-beta2", "-0.1"),
    ("train", "--lr-decay", "0"),
    ("train", "--n-critic", "0"),
    ("train", "--eval-every", "0"),
    ("train", "--score-samples", "1"),
    ("train", "--seed", str(2**63)),
    ("train", "--dataset", "imagenet"),
    ("train", "--dataset", "/no/such/data.npz"),
    ("train", "--device", "tpu"),
    ("train", "--score-classifier", "no-such-classifier"),
    ("train", "--collapse-samples", "1"),
    ("train", "--scores", "bleu"),
    # evaluate, sample, interpolate
    ("evaluate", "--draws", "0"),
    ("evaluate", "--samples", "1"),
    ("evaluate", "--batch-size", "-3"),
    ("evaluate", "--collapse-samples", "1"),
    ("evaluate", "--metrics", "nll,bleu"),
    ("evaluate", "--dataset", "imagenet"),
    ("evaluate", "--classifier", "/no/such/classifier.pt"),
    ("evaluate", "--seed", "-1"),
    ("evaluate", "--device", "cuda:x"),
    ("sample", "-n", "0"),
    ("sample", "-n", "100000"),
    ("sample", "--nrow", "0"),
    ("sample", "--temperature", "-1"),
    ("sample", "--temperature", "inf"),
    ("interpolate", "--pairs", "0"),
    ("interpolate", "--steps", "1"),
    ("interpolate", "--steps", "1000"),
    # scores and classifiers
    ("score", "--samples", "1"),
    ("score", "--metrics", "nll"),
    ("score", "--dataset", "imagenet"),
    ("classifier check", "--samples", "19"),
    ("classifier check", "--classifier", "no-such-classifier"),
    ("classifier train", "--epochs", "0"),
    ("classifier train", "--batch-size", "0"),
    ("classifier train", "--lr", "0"),
    ("classifier train", "--width", "0"),
    ("classifier info", "--classifier", "no-such-classifier"),
    # analyses
    ("baseline gmm", "--sigmas", "0.1,-1"),
    ("baseline gmm", "--grid", "1:0.1:5"),
    ("baseline gmm", "--refine", "-1"),
    ("baseline gmm", "--samples-for-scores", "-1"),
    ("baseline gmm", "--grid-samples", "0"),
    ("baseline gmm", "--score", "fid"),
    ("baseline gmm", "--train-samples", "0"),
    ("analyze likelihoods", "--ais-sigma", "0"),
    ("analyze likelihoods", "--ais-sigma", "often"),
    ("analyze likelihoods", "--methods", "exact,mcmc"),
    ("analyze likelihoods", "--n-test", "0"),
    ("analyze likelihoods", "--kde-samples", "-1"),
    ("analyze jacobian", "--n-samples", "0"),
    ("analyze jacobian", "--device", "gpu"),
    # reproduce
    ("reproduce", "--steps", "0"),
    ("reproduce", "--budget-minutes", "0"),
    ("reproduce", "--skip", "table9"),
    ("reproduce", "--model-option", "hidden"),
    ("reproduce", "--device", "tpu"),
    ("reproduce", "--seeds", "0"),
    ("reproduce", "--frontier", "0,1"),
    ("reproduce", "--frontier", "0.1,x"),
    ("reproduce", "--frontier", "inf"),
]

#: what each command needs besides the flag under test
_REQUIRED = {
    "evaluate": [NO_RUN],
    "sample": [NO_RUN],
    "interpolate": [NO_RUN],
    "analyze likelihoods": [NO_RUN],
    "analyze jacobian": [NO_RUN],
    "score": ["--dataset", "digits"],
    "classifier check": ["--dataset", "digits"],
    "classifier train": ["--dataset", "digits"],
    "reproduce": ["--preset", "quick"],
}


@pytest.mark.parametrize("command, flag, value", BAD, ids=[" ".join(b) for b in BAD])
def test_a_bad_value_is_refused_by_its_flag_before_any_work(capsys, tmp_path, monkeypatch, command, flag, value):
    monkeypatch.chdir(tmp_path)  # default outputs (runs/..., analysis/...) would land here
    given = [f"{flag}={value}"] if flag.startswith("--") else [flag, value]
    argv = [*command.split(), *_REQUIRED.get(command, []), *given]
    if command in ("train", "reproduce", "baseline gmm", "analyze likelihoods", "analyze jacobian"):
        argv += ["--out", str(tmp_path / "out")]
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert flag in lines[0] or flag.lstrip("-").replace("-", "_") in lines[0], lines[0]
    assert out == "" and list(tmp_path.iterdir()) == []  # nothing read before, nothing written


def _actions(parser: argparse.ArgumentParser, path: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{path} {name}".strip())
        else:
            yield path, action


def test_no_numeric_flag_takes_any_number():
    """Each number a command takes has a declared range (flowgan.options.integer/number/bounded):
    a flag typed with bare ``int`` or ``float`` would accept -1, 0, nan or inf and fail later."""
    bare = [
        f"{path} {'/'.join(action.option_strings)}"
        for path, action in _actions(build_parser())
        if action.type in (int, float)
    ]
    assert not bare, bare


def test_every_command_with_a_number_is_exercised_above():
    """A new command that takes a number needs its rows in BAD."""
    numeric = {
        path for path, action in _actions(build_parser()) if getattr(action.type, "__name__", "") in ("int", "float")
    }
    assert numeric and numeric <= {command for command, _, _ in BAD}, numeric - {command for command, _, _ in BAD}
