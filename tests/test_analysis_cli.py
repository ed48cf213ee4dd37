"""``flowgan baseline gmm`` and ``flowgan analyze likelihoods|jacobian`` on tiny runs."""

import json
import math
import subprocess
import sys

import pytest
from PIL import Image

from flowgan.cli import main
from flowgan.config import TrainConfig
from flowgan.training import Trainer, read_metrics


def run(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err):
    assert code == 2, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("analysis")
    out = []
    for name, steps, seed in (("short", 3, 0), ("longer", 6, 1)):
        cfg = TrainConfig(dataset="digits", model="nice-small", max_steps=steps, eval_every=3, train_eval_samples=50, seed=seed)
        Trainer(cfg, base / name, progress=False).fit()
        out.append(base / name)
    return out


@pytest.mark.parametrize("command", [["baseline"], ["baseline", "gmm"], ["analyze"], ["analyze", "likelihoods"], ["analyze", "jacobian"]])
def test_help(capsys, command):
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0 and "usage: flowgan" in out


def test_cli_module_imports_no_torch_or_matplotlib():
    code = ("import sys, flowgan.cli, flowgan.analysis.cli; flowgan.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_analyze_likelihoods_writes_table3(capsys, runs, tmp_path):
    code, out, err = run(capsys, "analyze", "likelihoods", *runs, "--labels", "A,B", "--n-test", 12, "--ais-steps", 5,
                         "--ais-chains", 2, "--ais-leapfrog", 2, "--kde-samples", 200, "--kde-val", 40, "--out", tmp_path, "--no-progress")
    assert code == 0, err
    table = json.loads((tmp_path / "table3.json").read_text())
    assert [r["label"] for r in table["runs"]] == ["A", "B"]
    for r in table["runs"]:
        assert r["checkpoint_name"] == "best_nll"  # no sample scores in these runs: best_mode falls back
        for m in ("exact", "ais", "kde"):
            assert math.isfinite(r[m]["nll_nats"])
        assert r["exact"]["n_full_test"] == 180 and r["ais"]["n_points"] == 12 and r["kde"]["n_samples"] == 200
        # exact NLL of the first 12 images equals flowgan.nll on them
        import flowgan

        model, _ = flowgan.load_model(r["checkpoint"])
        assert r["exact"]["nll_nats"] == pytest.approx(flowgan.nll(model, flowgan.load_dataset("digits").test.images[:12]), rel=1e-9)
    for m in ("exact", "ais", "kde"):
        assert sorted(table["rankings"][m]) == ["A", "B"]
        values = {r["label"]: r[m]["nll_nats"] for r in table["runs"]}
        assert values[table["rankings"][m][0]] <= values[table["rankings"][m][1]]
    assert set(table["rankings_agree"]) == {"ais", "kde"}
    md = (tmp_path / "table3.md").read_text()
    assert "| A |" in md and "Ranking" in md and "AIS" in md


def test_analyze_likelihoods_selects_the_ais_sigma_on_validation(capsys, runs, tmp_path):
    code, out, err = run(capsys, "analyze", "likelihoods", runs[0], "--methods", "ais", "--ais-sigma", "auto", "--ais-val", 4,
                         "--n-test", 5, "--ais-steps", 4, "--ais-chains", 2, "--ais-leapfrog", 1, "--out", tmp_path, "--no-progress")
    assert code == 0, err
    row = json.loads((tmp_path / "table3.json").read_text())["runs"][0]
    assert set(row) >= {"ais"} and "exact" not in row and "kde" not in row
    tried = {float(k): v for k, v in row["ais"]["sigma_selection"]["mean_val_ll"].items()}
    assert len(tried) == 6 and row["ais"]["observation_sigma"] == max(tried, key=tried.get)


def test_analyze_jacobian_writes_figure4(capsys, runs, tmp_path):
    code, out, err = run(capsys, "analyze", "jacobian", *runs, "-n", 5, "--out", tmp_path, "--no-progress")
    assert code == 0, err
    data = json.loads((tmp_path / "jacobian.json").read_text())
    assert [r["label"] for r in data["runs"]] == ["short", "longer"]
    for r in data["runs"]:
        assert r["n_samples"] == 5 and r["dim"] == 64 and r["method"] == "coupling"
        assert r["mean_logdet"] == pytest.approx(r["mean_logdet_flow"], abs=1e-3)
    w, h = Image.open(tmp_path / "figure4.png").size
    assert w > 300 and h > 200
    import numpy as np

    spectra = np.load(tmp_path / "spectra.npz")
    assert sorted(spectra.files) == ["00_short", "01_longer"] and spectra["00_short"].shape == (5, 64)


def test_baseline_gmm_against_a_run(capsys, runs, tmp_path):
    code, out, err = run(capsys, "baseline", "gmm", "--against", runs[1], "--val-samples", 60, "--test-samples", 40,
                         "--samples-for-scores", 0, "--refine", 1, "--grid-sigmas", "0.05,0.2", "--out", tmp_path, "--no-progress")
    assert code == 0, err
    r = json.loads((tmp_path / "gmm.json").read_text())
    assert r["dataset"] == "digits" and r["n_components"] == 1437 and r["n_val"] == 60 and r["n_test"] == 40
    assert 0 < r["best_sigma"] <= 1 and r["best_val_nll_nats"] == min(c["val_nll_nats"] for c in r["curve"])
    evals = read_metrics(runs[1], "eval")
    assert r["against"]["nll_nats"] == min(e["val_nll_nats"] for e in evals)  # no scores: the best NLL
    assert r["against"]["best_score"] is None and "skipped" in r["scores_note"]
    assert set(r["beats_nll"]) <= {row["sigma"] for row in r["sweep"]} and r["beats_both"] == []
    for row in r["sweep"]:
        assert (row["sigma"] in r["beats_nll"]) == (row["val_nll_nats"] < r["against"]["nll_nats"])
    assert (tmp_path / "gmm_vs_run.png").is_file() and (tmp_path / "gmm.md").is_file()
    assert len(list(tmp_path.glob("samples_sigma_*.png"))) == 2


def test_baseline_gmm_with_injected_scores(capsys, runs, tmp_path, monkeypatch):
    """With a scoring function the sweep scores mixture samples and shades where both beat the run."""
    import torch

    import flowgan.analysis.gmm as G

    def fake_scorer(dataset, metrics, split="test"):
        def score(images):
            return {"mode": float(10 * (1 - 2 * torch.minimum(images, 1 - images).mean()))}  # sharp = high

        return score, None

    monkeypatch.setattr(G, "default_score_fn", fake_scorer)
    # give the run a (poor) best MODE score so that the mixture beats it where it also has a better NLL
    metrics = runs[0] / "metrics.jsonl"
    original = metrics.read_text()
    lines = [json.loads(l) for l in original.splitlines()]
    for rec in lines:
        if rec.get("kind") == "eval":
            rec["mode"] = 1.0 + rec["step"] / 100
    metrics.write_text("".join(json.dumps(l) + "\n" for l in lines))
    try:
        code, out, err = run(capsys, "baseline", "gmm", "--against", runs[0], "--sigmas", "0.03,0.1,0.3,1", "--val-samples", 60,
                             "--test-samples", 20, "--samples-for-scores", 50, "--refine", 1, "--out", tmp_path, "--no-progress")
    finally:
        metrics.write_text(original)
    assert code == 0, err
    r = json.loads((tmp_path / "gmm.json").read_text())
    best = max((rec for rec in lines if rec.get("kind") == "eval"), key=lambda rec: rec["mode"])
    assert r["against"]["best_score"] == pytest.approx(best["mode"]) and r["against"]["nll_nats"] == best["val_nll_nats"]
    assert all("mode" in row["scores"] for row in r["sweep"]) and r["scores_note"] is None
    expected_both = [row["sigma"] for row in r["sweep"]
                     if row["val_nll_nats"] < r["against"]["nll_nats"] and row["scores"]["mode"] > r["against"]["best_score"]]
    assert r["beats_both"] == expected_both and r["beats_both"]  # the mixture wins somewhere
    assert r["sample_grids"] and (tmp_path / "gmm_vs_run.png").is_file()


@pytest.mark.parametrize(
    "argv",
    [
        ["baseline", "gmm"],  # no dataset, no run
        ["baseline", "gmm", "--dataset", "digits", "--sigmas", "0.1,2"],
        ["baseline", "gmm", "--dataset", "digits", "--grid", "1:0.1:3"],
        ["baseline", "gmm", "--dataset", "no-such-data"],
        ["analyze", "likelihoods", "/no/such/run"],
        ["analyze", "jacobian", "/no/such/run"],
    ],
)
def test_bad_input_gives_one_line_errors(capsys, argv, tmp_path):
    code, _, err = run(capsys, *argv, "--out", tmp_path / "o")
    assert_one_line_error(code, err)


def test_bad_options_on_real_runs(capsys, runs, tmp_path):
    for argv in (["analyze", "likelihoods", runs[0], "--methods", "exact,magic"],
                 ["analyze", "likelihoods", *runs, "--labels", "only-one"],
                 ["analyze", "likelihoods", runs[0], "--ais-sigma", "wide"],
                 ["analyze", "jacobian", runs[0], "--checkpoint", "best_fid"],
                 ["baseline", "gmm", "--against", runs[0], "--dataset", "mnist5k"]):
        code, _, err = run(capsys, *argv, "--out", tmp_path / "o")
        assert_one_line_error(code, err)
