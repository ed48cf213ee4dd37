"""The analyses as functions with typed settings and results (Table 3, Figure 4, the mixture baseline)."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import flowgan
from flowgan.analysis.baseline import GmmSettings, gmm_baseline
from flowgan.analysis.common import settings_from
from flowgan.analysis.figure4 import JacobianSettings, jacobian_analysis
from flowgan.analysis.table3 import LikelihoodSettings, LikelihoodTable, likelihood_table, ranking, table3_markdown
from flowgan.errors import FlowganError
from flowgan.rundir import read_metrics


@pytest.fixture(scope="module")
def runs(two_digit_runs):
    return two_digit_runs


def _rows(values_by_method):
    labels = list(next(iter(values_by_method.values())))
    return [
        {
            "label": label,
            "dataset": "digits",
            **{m: {"nll_nats": v[label], "sem": 0.5} for m, v in values_by_method.items()},
        }
        for label in labels
    ]


def test_rankings_order_by_likelihood_with_ties_and_nans():
    assert ranking({"a": -1.0, "b": float("nan"), "c": 2.0}) == ["c", "a", "b"]
    table = LikelihoodTable(
        LikelihoodSettings(methods=("exact", "ais", "kde")),
        _rows(
            {
                "exact": {"MLE": -3300.0, "ADV": 26000.0, "Hybrid": -3100.0},
                "ais": {"MLE": -2580.0, "ADV": -2900.0, "Hybrid": -2700.0},
                "kde": {"MLE": -167.0, "ADV": -3.0, "Hybrid": -167.0},
            }
        ),
    )
    assert table.rankings == {
        "exact": ["MLE", "Hybrid", "ADV"],
        "ais": ["ADV", "Hybrid", "MLE"],
        "kde": ["MLE", "Hybrid", "ADV"],
    }
    assert table.rankings_text["exact"] == "MLE > Hybrid > ADV" and table.rankings_text["kde"] == "MLE = Hybrid > ADV"
    assert table.rankings_agree == {"ais": False, "kde": True}
    md = table.markdown()
    assert (
        "* AIS: ADV > Hybrid > MLE (differs from exact)" in md and "* KDE: MLE = Hybrid > ADV (agrees with exact)" in md
    )
    assert "| MLE |  (step ?) | -3300.00 ± 0.50 | -2580.00 ± 0.50 | -167.00 ± 0.50 |" in md
    d = table.to_dict()
    assert list(d) == [
        "dataset",
        "n_test",
        "units",
        "settings",
        "runs",
        "rankings",
        "rankings_text",
        "rankings_agree",
        "notes",
    ]
    assert d["settings"]["ais"]["sigma"] == pytest.approx(math.sqrt(0.025)) and d["n_test"] == 100


def test_likelihood_table_on_runs(runs, tmp_path):
    settings = LikelihoodSettings(
        methods=("exact", "kde"), n_test=10, kde_samples=100, kde_val=30, checkpoint="best_nll"
    )
    table = likelihood_table(runs, settings, labels=["A", "B"])
    test = flowgan.load_dataset("digits").test.images
    for row, run, step in zip(table.rows, runs, (3, 6)):
        assert (
            row["checkpoint_name"] == "best_nll"
            and row["step"] == step
            and row["objective"] == "mle"
            and row["lam"] == 0.0
        )
        model, _ = flowgan.load_model(run)
        assert row["exact"]["nll_nats"] == pytest.approx(flowgan.nll(model, test[:10]), rel=1e-9)
        assert row["exact"]["nll_nats_full_test"] == pytest.approx(flowgan.nll(model, test), rel=1e-9)
        assert (
            "ais" not in row
            and row["kde"]["n_samples"] == 100
            and row["kde"]["nll_nats"] == row["kde"]["test_nll_nats"]
        )
    values = {r["label"]: -r["exact"]["nll_nats"] for r in table.rows}
    assert table.rankings["exact"] == sorted(values, key=values.get, reverse=True) and set(table.rankings_agree) == {
        "kde"
    }
    path = table.write(tmp_path)
    assert json.loads(path.read_text()) == json.loads(json.dumps(table.to_dict()))
    assert (tmp_path / "table3.md").read_text() == table3_markdown(table.to_dict()) == table.markdown()


def test_settings_are_checked_and_unknown_keys_are_errors():
    with pytest.raises(FlowganError, match="methods must be a subset of exact, ais, kde"):
        LikelihoodSettings(methods=("exact", "magic"))
    with pytest.raises(FlowganError, match="n_test must be a positive integer"):
        LikelihoodSettings(n_test=0)
    with pytest.raises(FlowganError, match="unknown likelihoods setting.s. ais_step; known: methods, n_test"):
        settings_from(LikelihoodSettings, {"n_test": 5, "ais_step": 3}, "likelihoods")
    with pytest.raises(FlowganError, match="unknown jacobian setting.s. samples"):
        settings_from(JacobianSettings, {"samples": 4}, "jacobian")
    with pytest.raises(FlowganError, match="bandwidths must lie in"):
        GmmSettings(sigmas=(0.1, 1.5))
    assert settings_from(GmmSettings, {"refine": 2, "val_samples": 40}, "gmm") == GmmSettings(refine=2, val_samples=40)


def test_jacobian_analysis_on_runs(runs, tmp_path):
    result = jacobian_analysis(runs, JacobianSettings(n=3, checkpoint="latest"))
    assert [r["label"] for r in result.rows] == ["short", "longer"] and [r["checkpoint_name"] for r in result.rows] == [
        "latest",
        "latest",
    ]
    for r, values in zip(result.rows, result.spectra):
        assert values.shape == (3, 64) and r["method"] == "coupling"
        assert r["mean_logdet"] == pytest.approx(float(np.log(values).sum(1).mean()), rel=1e-12)
        assert r["mean_logdet"] == pytest.approx(r["mean_logdet_flow"], abs=1e-3)  # change of variables
    fig = result.write(tmp_path, title="two runs")
    data = json.loads((tmp_path / "jacobian.json").read_text())
    assert data["n_samples"] == 3 and data["figure"] == str(fig) and [r["step"] for r in data["runs"]] == [3, 6]
    md = (tmp_path / "jacobian.md").read_text().splitlines()
    assert len(md) == 6 + 2 and md[-1].startswith(f"| longer | {result.rows[1]['mean_logdet']:.2f} |")
    assert Image.open(fig).size[0] > 300


def test_gmm_baseline_with_a_score_function(runs, tmp_path):
    """With a scoring function the sweep scores mixture samples and records where both beat the run."""

    def sharpness(images):  # sharp samples score high
        return {"mode": float(10 * (1 - 2 * torch.minimum(images, 1 - images).mean()))}

    metrics = runs[0] / "metrics.jsonl"
    original = metrics.read_text()
    lines = [json.loads(line) for line in original.splitlines()]
    for rec in lines:  # give the run a (poor) best MODE score
        if rec.get("kind") == "eval":
            rec["mode"] = 1.0 + rec["step"] / 100
    metrics.write_text("".join(json.dumps(rec) + "\n" for rec in lines))
    try:
        settings = GmmSettings(
            sigmas=(0.03, 0.1, 0.3, 1.0), val_samples=60, test_samples=20, samples_for_scores=50, refine=1
        )
        result = gmm_baseline(None, settings, against=runs[0], score_fn=sharpness)
    finally:
        metrics.write_text(original)
    r = result.record
    best = max((rec for rec in read_metrics(runs[0], "eval")), key=lambda rec: rec["step"])
    assert (
        r["against"]["best_score"] == pytest.approx(1.0 + best["step"] / 100)
        and r["against"]["nll_nats"] == best["val_nll_nats"]
    )
    assert r["dataset"] == "digits" and r["score_name"] == "mode" and r["scores_note"] is None
    expected_both = [
        row["sigma"]
        for row in r["sweep"]
        if row["val_nll_nats"] < r["against"]["nll_nats"] and row["scores"]["mode"] > r["against"]["best_score"]
    ]
    assert r["beats_both"] == expected_both and r["beats_both"]  # the mixture wins somewhere
    assert [s for s, _ in result.grids] == [r["best_sigma"], max(r["beats_both"])]
    fig = result.write(tmp_path)
    written = json.loads((tmp_path / "gmm.json").read_text())
    assert written["figure"] == str(fig) and len(written["sample_grids"]) == 2
    assert all((tmp_path / p).is_file() for p in written["sample_grids"].values())
    assert f"on both at {', '.join(f'{s:.3g}' for s in r['beats_both'])}." in (tmp_path / "gmm.md").read_text()
    # Figure 3: green where the mixture beats the run on both
    pixels = np.asarray(Image.open(fig).convert("RGB")).astype(int)
    green = (pixels[..., 1] > pixels[..., 0] + 15) & (pixels[..., 1] > pixels[..., 2] + 15)
    assert green.sum() > 500
