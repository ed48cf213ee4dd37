"""``flowgan baseline gmm`` and ``flowgan analyze likelihoods|jacobian`` on tiny runs: the commands
parse their flags, call the analyses (tests/test_analyses.py) and print; errors are one line that
names the problem."""

import json
import math
import subprocess
import sys

import pytest
from PIL import Image

from flowgan.cli import main
from flowgan.rundir import read_metrics


def run(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def runs(two_digit_runs):
    return two_digit_runs


@pytest.mark.parametrize(
    "command", [["baseline"], ["baseline", "gmm"], ["analyze"], ["analyze", "likelihoods"], ["analyze", "jacobian"]]
)
def test_help(capsys, command):
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0 and "usage: flowgan" in out


def test_cli_module_imports_no_torch_or_matplotlib():
    code = (
        "import sys, flowgan.cli, flowgan.analysis.cli; flowgan.cli.build_parser(); "
        "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_analyze_likelihoods_writes_table3(capsys, runs, tmp_path):
    code, out, err = run(
        capsys,
        "analyze",
        "likelihoods",
        *runs,
        "--labels",
        "A,B",
        "--n-test",
        12,
        "--ais-steps",
        5,
        "--ais-chains",
        2,
        "--ais-leapfrog",
        2,
        "--kde-samples",
        200,
        "--kde-val",
        40,
        "--out",
        tmp_path,
        "--no-progress",
    )
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
        assert r["exact"]["nll_nats"] == pytest.approx(
            flowgan.nll(model, flowgan.load_dataset("digits").test.images[:12]), rel=1e-9
        )
    for m in ("exact", "ais", "kde"):
        assert sorted(table["rankings"][m]) == ["A", "B"]
        values = {r["label"]: r[m]["nll_nats"] for r in table["runs"]}
        assert values[table["rankings"][m][0]] <= values[table["rankings"][m][1]]
    assert set(table["rankings_agree"]) == {"ais", "kde"}
    md = (tmp_path / "table3.md").read_text()
    assert "| A | best_nll (step 3) |" in md and "| B | best_nll (step 6) |" in md
    assert f"* AIS: {table['rankings_text']['ais']}" in md and out.startswith(md)  # printed as written


def test_analyze_likelihoods_selects_the_ais_sigma_on_validation(capsys, runs, tmp_path):
    code, _, err = run(
        capsys,
        "analyze",
        "likelihoods",
        runs[0],
        "--methods",
        "ais",
        "--ais-sigma",
        "auto",
        "--ais-val",
        4,
        "--n-test",
        5,
        "--ais-steps",
        4,
        "--ais-chains",
        2,
        "--ais-leapfrog",
        1,
        "--out",
        tmp_path,
        "--no-progress",
    )
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
    import numpy as np

    spectra = np.load(tmp_path / "spectra.npz")
    assert sorted(spectra.files) == ["00_short", "01_longer"] and spectra["00_short"].shape == (5, 64)
    for name, r in zip(spectra.files, data["runs"]):  # the JSON's quantiles are those of the saved spectra
        q50 = float(np.quantile(np.log10(spectra[name].ravel()), 0.5))
        assert r["log10_singular_value_quantiles"]["q50"] == pytest.approx(q50, abs=1e-9)
    # the figure draws one CDF per run, in matplotlib's first two cycle colours (C0 blue, C1 orange;
    # the curves of two near-identical runs overlap, so count loosely: the legend's swatch at least)
    pixels = np.asarray(Image.open(tmp_path / "figure4.png").convert("RGB")).reshape(-1, 3).astype(int)
    for colour in ((31, 119, 180), (255, 127, 14)):
        assert (np.abs(pixels - colour).sum(1) < 60).sum() > 20, colour
    assert "short: mean log|det|" in out and "longer: mean log|det|" in out


def test_baseline_gmm_against_a_run(capsys, runs, tmp_path):
    code, _, err = run(
        capsys,
        "baseline",
        "gmm",
        "--against",
        runs[1],
        "--val-samples",
        60,
        "--test-samples",
        40,
        "--samples-for-scores",
        0,
        "--refine",
        1,
        "--grid-sigmas",
        "0.05,0.2",
        "--out",
        tmp_path,
        "--no-progress",
    )
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


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["baseline", "gmm"], ["no dataset", "--dataset", "--against"]),
        (["baseline", "gmm", "--dataset", "digits", "--sigmas", "0.1,2"], ["bandwidths must lie in (0, 1]", "2"]),
        (["baseline", "gmm", "--dataset", "digits", "--grid", "1:0.1:3"], ["--grid", "need 0 < LO < HI"]),
        (["baseline", "gmm", "--dataset", "digits", "--refine", "-1"], ["--refine", ">= 0"]),
        (["baseline", "gmm", "--dataset", "no-such-data"], ["unknown dataset 'no-such-data'"]),
        (["baseline", "gmm", "--against", "/no/such/run"], ["--against", "must be a run directory", "/no/such/run"]),
        (["analyze", "likelihoods", "/no/such/run"], ["/no/such/run is neither a run directory nor a checkpoint file"]),
        (["analyze", "jacobian", "/no/such/run"], ["/no/such/run is neither a run directory nor a checkpoint file"]),
        (["analyze", "likelihoods", "/no/such/run", "--n-test", "0"], ["--n-test", "must be >= 1, got 0"]),
    ],
)
def test_bad_input_gives_one_line_errors(capsys, argv, needles, tmp_path):
    code, _, err = run(capsys, *argv, "--out", tmp_path / "o")
    assert_one_line_error(code, err, *needles)


@pytest.mark.parametrize(
    "argv, needles",
    [
        (
            ["analyze", "likelihoods", 0, "--methods", "exact,magic"],
            ["argument --methods: unknown method magic; choose from exact, ais, kde"],
        ),
        (["analyze", "likelihoods", 0, 1, "--labels", "only-one"], ["1 labels for 2 runs"]),
        (["analyze", "likelihoods", 0, "--ais-sigma", "wide"], ["--ais-sigma", "'wide'"]),
        (
            ["analyze", "likelihoods", 0, "--ais-sigma", "-0.1"],
            ["--ais-sigma", "must be a positive number or 'auto'", "-0.1"],
        ),
        (
            ["analyze", "jacobian", 0, "--checkpoint", "best_fid"],
            ["no checkpoint 'best_fid'", "it has best_nll, latest"],
        ),
        (
            ["baseline", "gmm", "--against", 0, "--dataset", "mnist5k"],
            ["dataset mnist5k differs from the run's dataset digits"],
        ),
    ],
)
def test_bad_options_on_real_runs(capsys, runs, tmp_path, argv, needles):
    argv = [runs[a] if isinstance(a, int) else a for a in argv]
    code, _, err = run(capsys, *argv, "--out", tmp_path / "o")
    line = assert_one_line_error(code, err, *needles)
    assert line.startswith(f"flowgan {argv[0]}") and ": error: " in line


def test_a_glow_run_through_evaluate_sample_and_the_jacobian_analysis(capsys, tmp_path):
    """Issue 24: a (tiny) glow-small run works where every generator does: evaluate, sample at a
    temperature, and Figure 4's Jacobian spectra (autograd), whose log-det matches the flow's own."""
    out = tmp_path / "glow"
    code, _, err = run(
        capsys, "train", "--dataset", "digits", "--model", "glow-small", "--model-option", "steps=1",
        "--model-option", "hidden=8", "--max-steps", 3, "--eval-every", 3, "--no-progress", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    code, stdout, err = run(capsys, "evaluate", out, "--metrics", "nll")
    assert code == 0, err
    assert math.isfinite(json.loads(stdout)["nll_bpd"])
    code, _, err = run(capsys, "sample", out, "-n", 16, "--temperature", 0.7, "--out", tmp_path / "s.png")
    assert code == 0 and (tmp_path / "s.png").is_file(), err
    code, _, err = run(capsys, "analyze", "jacobian", out, "-n", 3, "--out", tmp_path / "jac", "--no-progress")
    assert code == 0, err
    (r,) = json.loads((tmp_path / "jac" / "jacobian.json").read_text())["runs"]
    assert r["dim"] == 64 and r["method"] == "autograd" and r["n_samples"] == 3
    assert r["mean_logdet"] == pytest.approx(r["mean_logdet_flow"], abs=1e-2)
