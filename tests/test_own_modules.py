"""Modules in: a generator, critic and data of one's own train through flowgan.train and the CLI,
resume bit for bit, are rebuilt from their import path, and are refused in one line when they
do not meet the generator protocol (docs/generators.md)."""

import importlib.util
import json
import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

import flowgan
from flowgan.checkpoint import load_checkpoint
from flowgan.cli import main
from flowgan.config import TrainConfig
from flowgan.data import load_dataset
from flowgan.data_input import as_dataset
from flowgan.errors import CapabilityError, DataError, FlowganError, Interrupted
from flowgan.generator import Generator, check_generator, require

OWN = Path(__file__).parent / "own_modules.py"


def _own():
    import importlib.util

    spec = importlib.util.spec_from_file_location("own_modules", OWN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


own = _own()


def _cfg(**kw):
    base = dict(dataset="digits", objective="wgan-gp", lam=1.0, n_critic=2, batch_size=32, max_steps=6, eval_every=3)
    base.update(train_eval_samples=50, eval_samples=60, collapse_samples=0, lr=1e-3)
    return TrainConfig(**{**base, **kw})


def one_line(code, err, *needles):
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ----------------------------------------------------------------------------- the protocol


def test_the_own_generator_meets_the_protocol_and_its_log_density_is_exact():
    torch.manual_seed(0)
    g = own.LogitGaussian((1, 2, 2)).double()
    with torch.no_grad():
        g.mean.normal_()
        g.log_std.normal_(0, 0.3)
    assert isinstance(g, Generator)
    check_generator(g, (1, 2, 2))
    x = torch.rand(5, 1, 2, 2, dtype=torch.float64) * 0.9 + 0.05
    # change of variables by brute force: the map x -> standardised latent, its Jacobian's log-det
    a = g.alpha

    def to_latent(v):
        y = a + (1 - 2 * a) * v
        return ((torch.log(y) - torch.log1p(-y)) - g.mean.flatten()) / g.log_std.exp().flatten()

    for i in range(len(x)):
        xi = x[i].flatten()
        jac = torch.autograd.functional.jacobian(to_latent, xi)
        z = to_latent(xi)
        expected = -0.5 * (z**2).sum() - 0.5 * len(z) * math.log(2 * math.pi) + torch.linalg.slogdet(jac)[1]
        assert torch.allclose(g.log_prob(x[i : i + 1])[0], expected, atol=1e-10)


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda: own.NoLogProb((1, 8, 8)), "log_prob(x)"),
        (lambda: object(), "not a torch.nn.Module"),
        (lambda: own.LogitGaussian((1, 4, 4)), "(1, 4, 4), the data's are (1, 8, 8)"),
        (lambda: own.LogitGaussian((1, 8, 8)).requires_grad_(False), "no trainable parameters"),
    ],
)
def test_a_module_that_fails_the_protocol_is_refused_before_training(tmp_path, make, needle):
    with pytest.raises(FlowganError) as e:
        flowgan.train(_cfg(), tmp_path / "run", model=make(), progress=False)
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "run").exists()


def test_an_analysis_names_the_capability_a_generator_lacks():
    g = own.LogitGaussian((1, 8, 8))
    with pytest.raises(
        CapabilityError, match="needs a generator with decode, prior; LogitGaussian has no decode, prior"
    ):
        require(g, "decode", "prior", analysis="AIS")
    from flowgan.analysis.jacobian import jacobian_spectra

    with pytest.raises(CapabilityError, match="Jacobian"):
        jacobian_spectra(g, 2)
    require(flowgan.build_model("nice-small", shape=(1, 8, 8)), "encode", "decode", "prior", analysis="x")


# ----------------------------------------------------------------------------- training from Python


def test_own_generator_and_critic_train_and_resume_bit_for_bit(tmp_path):
    """Hybrid training of a generator without latents and a critic with (N, 1) scores, passed as
    modules; a run killed by SIGTERM at step 4 (between evaluations) and resumed with the modules
    passed again equals the uninterrupted run: parameters, optimisers' effect, random stream."""

    def modules():
        torch.manual_seed(5)
        return own.LogitGaussian((1, 8, 8)), own.mlp_critic((1, 8, 8))

    def kill_at_step_4(state, _modules):  # a real SIGTERM, as a scheduler would send it
        if state.step == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    g, d = modules()
    before = g.mean.detach().clone()
    full = flowgan.train(_cfg(), tmp_path / "full", model=g, critic=d, progress=False)
    assert full["step"] == 6 and not torch.equal(before, g.mean.detach())
    g, d = modules()
    with pytest.raises(Interrupted, match="step 4"):
        flowgan.train(_cfg(), tmp_path / "part", model=g, critic=d, progress=False, callbacks=(kill_at_step_4,))
    g, d = modules()  # a fresh process would build them again: the checkpoint restores them
    flowgan.train(None, tmp_path / "part", resume=True, model=g, critic=d, progress=False)
    a, b = (load_checkpoint(tmp_path / r / "checkpoints" / "latest.pt") for r in ("full", "part"))
    for key in ("model", "critic"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name}"
    assert torch.equal(a["rng"], b["rng"]) and a["stream"] == b["stream"] and a["step"] == b["step"] == 6
    info = json.loads((tmp_path / "full" / "config.json").read_text())
    assert info["config"]["model"] == "python:LogitGaussian" and info["config"]["critic"] == "python:Sequential"
    assert a["model_spec"] == {"python": "LogitGaussian"}
    records = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r.get("kind") == "eval"]
    assert [r["step"] for r in evals] == [0, 3, 6] and all(math.isfinite(r["val_nll_nats"]) for r in evals)
    assert (tmp_path / "full" / "samples" / "step_0000006.png").is_file()


def test_a_run_of_python_modules_says_how_to_resume_and_load_it(tmp_path, capsys):
    flowgan.train(
        _cfg(objective="mle", max_steps=2, eval_every=2),
        tmp_path / "run",
        model=own.LogitGaussian((1, 8, 8)),
        progress=False,
    )
    with pytest.raises(FlowganError, match="passed from Python"):
        flowgan.train(None, tmp_path / "run", resume=True, progress=False)
    one_line(
        main(["evaluate", str(tmp_path / "run"), "--metrics", "nll"]), capsys.readouterr().err, "passed from Python"
    )
    model, _ = flowgan.load_model(tmp_path / "run", "latest", model=own.LogitGaussian((1, 8, 8)))
    assert model.sample(3, generator=torch.Generator().manual_seed(0)).shape == (3, 1, 8, 8)


def test_data_as_tensors_with_labels_checked(tmp_path):
    digits = load_dataset("digits")
    x, y = digits.train.images, digits.train.labels
    with pytest.raises(DataError, match=f"data: {len(y) - 1} labels for {len(x)} images"):
        as_dataset((x, y[:-1]))
    floats = x.double() / 255
    summary = flowgan.train(
        _cfg(objective="mle", max_steps=2, eval_every=2), tmp_path / "run", data=(floats, y), progress=False
    )
    assert summary["step"] == 2
    info = json.loads((tmp_path / "run" / "config.json").read_text())
    n = len(x)
    assert info["config"]["dataset"] == "python:data"
    assert (info["dataset"]["train"], info["dataset"]["val"], info["dataset"]["test"]) == (
        n - 2 * (n // 10),
        n // 10,
        n // 10,
    )


@pytest.mark.parametrize(
    "labels, needle",
    [
        (lambda y: y[:-1], "labels for"),
        (lambda y: -y - 1, ">= 0"),
        (lambda y: y.double() + 0.5, "integer class ids"),
        (lambda y: torch.nn.functional.one_hot(y), "vector of class ids"),
    ],
)
def test_bad_labels_are_refused_in_one_line_in_tensors_and_npz(tmp_path, labels, needle):
    d = load_dataset("digits")
    bad = labels(d.train.labels)
    with pytest.raises(DataError, match=needle):
        as_dataset({"train": (d.train.images, bad), "test": (d.test.images, d.test.labels)})
    path = tmp_path / "bad.npz"
    np.savez(
        path,
        x_train=d.train.images.numpy(),
        y_train=bad.numpy(),
        x_test=d.test.images.numpy(),
        y_test=d.test.labels.numpy(),
    )
    with pytest.raises(DataError, match=f"bad.npz:y_train.*{needle}"):
        load_dataset(str(path))


def test_a_torch_dataset_of_image_label_pairs_is_data():
    d = load_dataset("digits")

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 100

        def __getitem__(self, i):
            return d.train.images[i].float() / 255, int(d.train.labels[i])

    ds = as_dataset(Pairs())
    assert (len(ds.train), len(ds.val), len(ds.test)) == (80, 10, 10) and ds.num_classes == 10
    together = torch.cat([ds.train.images, ds.val.images, ds.test.images])
    assert sorted(map(bytes, together.numpy())) == sorted(map(bytes, d.train.images[:100].numpy()))


# ----------------------------------------------------------------------------- the CLI


def test_cli_trains_rebuilds_and_resumes_modules_from_import_paths(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--dataset", "digits", "--model", f"{OWN}:logit_gaussian", "--model-option", "init_std=0.5"]
    args += ["--critic", f"{OWN}:mlp_critic", "--critic-option", "hidden=16", "--objective", "wgan-gp", "--lambda", "1"]
    args += [
        "--n-critic",
        "2",
        "--batch-size",
        "32",
        "--max-steps",
        "2",
        "--eval-every",
        "2",
        "--no-progress",
        "--out",
        str(run),
    ]
    assert main(args) == 0
    info = json.loads((run / "config.json").read_text())
    assert info["config"]["model"] == f"{OWN.resolve()}:logit_gaussian" and info["config"]["model_options"] == {
        "init_std": 0.5
    }
    ckpt = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert ckpt["model_spec"] == {
        "factory": f"{OWN.resolve()}:logit_gaussian",
        "kwargs": {"init_std": 0.5},
        "shape": [1, 8, 8],
    }
    assert ckpt["critic_spec"]["factory"].endswith("own_modules.py:mlp_critic")
    assert main(["train", "--resume", str(run), "--max-steps", "4", "--no-progress"]) == 0
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 4
    capsys.readouterr()
    assert main(["evaluate", str(run), "--metrics", "nll", "--checkpoint", "latest"]) == 0
    assert main(["sample", str(run), "-n", "4", "-o", str(tmp_path / "s.png")]) == 0 and (tmp_path / "s.png").is_file()
    capsys.readouterr()
    one_line(
        main(["analyze", "jacobian", str(run), "--out", str(tmp_path / "j")]),
        capsys.readouterr().err,
        "Jacobian",
        "no decode",
    )


@pytest.mark.parametrize(
    "model, needle",
    [
        ("no_such_module_xyz:make", "cannot be imported: ModuleNotFoundError"),
        (f"{OWN}:missing", "has no callable 'missing'"),
        (f"{OWN}:raises", "raised RuntimeError: out of ideas"),
        (f"{OWN}:not_a_module", "returned a int, not a torch.nn.Module"),
        (f"{OWN}:no_log_prob", "has no log_prob(x)"),
    ],
)
def test_cli_refuses_a_bad_import_path_in_one_line(tmp_path, capsys, model, needle):
    code = main(
        [
            "train",
            "--dataset",
            "digits",
            "--model",
            model,
            "--max-steps",
            "1",
            "--no-progress",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    one_line(code, capsys.readouterr().err, needle)
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- zuko and normflows

EXAMPLES = Path(__file__).parent.parent / "examples" / "own_flows.py"


@pytest.mark.parametrize("factory", ["zuko_nsf", "normflows_realnvp"])
def test_library_flows_train_hybrid_through_train_and_the_cli(tmp_path, capsys, factory):
    """A zuko NSF and a normflows Real-NVP: a few hybrid steps by flowgan.train (module passed in)
    and by the CLI (import path), each with finite NLLs, changed parameters and a rebuilt model."""
    spec = importlib.util.spec_from_file_location("own_flows", EXAMPLES)
    examples = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(examples)
    model = getattr(examples, factory)((1, 8, 8), hidden=16)
    before = [p.detach().clone() for p in model.parameters()]
    summary = flowgan.train(_cfg(max_steps=2, eval_every=2), tmp_path / "py", model=model, progress=False)
    assert summary["step"] == 2 and math.isfinite(summary["best"]["val_nll_nats"]["value"])
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters()))
    run = tmp_path / "cli"
    args = ["train", "--dataset", "digits", "--model", f"{EXAMPLES}:{factory}", "--model-option", "hidden=16"]
    args += ["--objective", "wgan-gp", "--lambda", "1", "--n-critic", "2", "--batch-size", "32", "--max-steps", "2"]
    assert main([*args, "--eval-every", "2", "--no-progress", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--metrics", "nll", "--checkpoint", "latest"]) == 0
    assert "nll" in capsys.readouterr().out.lower()
    loaded = flowgan.load_run(run, "latest").model
    assert loaded.spec["adapter"] == factory.split("_")[0]


def test_reproduce_takes_a_model_by_import_path_and_keeps_it(tmp_path, capsys):
    """``flowgan reproduce --model PATH --model-option k=v``: every run of the reproduction is built
    from it (recorded in reproduce.json); the same directory with another model is refused."""
    from flowgan.cli import build_parser
    from flowgan.reproduce.cli import _modules
    from flowgan.reproduce.pipeline import Reproduction

    args = build_parser().parse_args(
        ["reproduce", "--preset", "quick", "--model", f"{OWN}:logit_gaussian", "--model-option", "init_std=0.5"]
    )
    modules = _modules(args)
    assert modules == {"model": f"{OWN.resolve()}:logit_gaussian", "model_options": {"init_std": 0.5}}
    rep = Reproduction("quick", tmp_path / "rep", progress=False, modules=modules)
    rep._save_state()
    config = rep.run_config("hybrid")
    assert config.model == modules["model"] and config.model_options == {"init_std": 0.5} and config.lam == 0.1
    with pytest.raises(FlowganError, match="choose another --out"):
        Reproduction("quick", tmp_path / "rep", progress=False, modules={"model": "nice-mnist"})
    with pytest.raises(SystemExit):  # refused while parsing (tests/test_flags.py checks the message)
        build_parser().parse_args(["reproduce", "--preset", "quick", "--model-option", "oops"])
