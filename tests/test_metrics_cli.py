"""`flowgan classifier`, `flowgan score` and `flowgan evaluate --metrics ...`: round trips and one-line errors."""

import json
import subprocess
import sys

import pytest

from flowgan.cli import main


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("FLOWGAN_CACHE", str(tmp_path_factory.getbasetemp() / "flowgan-cache-cli"))


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err


@pytest.mark.parametrize(
    "command",
    [
        ["classifier"],
        ["classifier", "train"],
        ["classifier", "info"],
        ["classifier", "list"],
        ["classifier", "check"],
        ["score"],
    ],
)
def test_help(capsys, command):
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0 and "usage: flowgan" in out


def test_help_does_not_import_torch():
    code = "import sys, flowgan.cli; flowgan.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_score_real_mnist5k(capsys, tmp_path):
    code, out, _ = run(
        capsys,
        "score",
        "--dataset",
        "mnist5k",
        "--split",
        "test",
        "--metrics",
        "is,mode,fid,kid",
        "-o",
        str(tmp_path / "s.json"),
    )
    assert code == 0
    r = json.loads(out)
    assert r == json.loads((tmp_path / "s.json").read_text())
    print(
        f"\nflowgan score mnist5k test: IS {r['is']:.3f}, MODE {r['mode']:.3f}, MODE(paper) {r['mode_paper']:.3f}, "
        f"FID(test vs val) {r['fid']:.4f}, KID {r['kid']:.5f}"
    )
    assert r["is"] > 8 and r["mode"] > 8 and r["mode_paper"] > 8
    assert {"is", "is_std", "mode_paper", "mode", "fid", "kid", "kid_std", "score_samples", "classifier"} <= set(r)
    assert r["split"] == "test" and r["reference_split"] == "val" and r["score_samples"] == 500
    assert "trained on mnist (50000 training images)" in r["classifier"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("metrics-cli") / "run"
    mp = pytest.MonkeyPatch()
    mp.setenv("FLOWGAN_CACHE", str(tmp_path_factory.getbasetemp() / "flowgan-cache-cli"))
    try:
        code = main(
            [
                "train",
                "--dataset",
                "mnist5k",
                "--model",
                "nice-small",
                "--max-steps",
                "2",
                "--eval-every",
                "2",
                "--scores",
                "mode",
                "--score-samples",
                "100",
                "--out",
                str(run_dir),
                "--no-progress",
            ]
        )
    finally:
        mp.undo()
    assert code == 0
    return run_dir


def test_train_with_scores_then_evaluate_every_metric(capsys, tiny_run, tmp_path):
    assert (tiny_run / "checkpoints" / "best_mode.pt").is_file()
    from flowgan.metrics.classifiers import find_classifier

    default = find_classifier("mnist5k")
    evals = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert evals and all(e["classifier"] == f"{default.name}@{default.sha256}" and e["mode_std"] >= 0 for e in evals)
    out_file = tmp_path / "e.json"
    code, out, _ = run(
        capsys,
        "evaluate",
        str(tiny_run),
        "--checkpoint",
        "best_mode",
        "--metrics",
        "nll,is,mode,fid,kid",
        "--samples",
        "300",
        "-o",
        str(out_file),
    )
    assert code == 0
    r = json.loads(out_file.read_text())
    assert r == json.loads(out)
    assert {
        "nll_nats",
        "nll_bpd",
        "is",
        "is_std",
        "mode_paper",
        "mode",
        "fid",
        "kid",
        "kid_std",
        "score_samples",
        "classifier",
    } <= set(r)
    assert r["score_samples"] == 300 and r["fid"] > 0
    assert r["mode_paper"] == pytest.approx(r["is"], rel=1e-9)
    # the command's numbers are the library's: the same checkpoint, 300 samples of seed 0
    from flowgan.checkpoint import load_model
    from flowgan.data import load_dataset
    from flowgan.metrics import evaluate_samples

    model, _ = load_model(tiny_run, "best_mode")
    lib = evaluate_samples(model, load_dataset("mnist5k"), ["is", "mode"], n_samples=300, split="test")
    assert (r["is"], r["is_std"], r["mode"], r["mode_paper"]) == (
        lib["is"],
        lib["is_std"],
        lib["mode"],
        lib["mode_paper"],
    )
    # the same checkpoint gives the same scores
    code, out2, _ = run(
        capsys,
        "evaluate",
        str(tiny_run),
        "--checkpoint",
        "best_mode",
        "--metrics",
        "is,mode",
        "--samples",
        "300",
        "-o",
        str(tmp_path / "e2.json"),
    )
    again = json.loads(out2)
    assert (again["is"], again["mode"]) == (r["is"], r["mode"])


def test_classifier_train_and_info(capsys, tmp_path):
    out_file = tmp_path / "digits.pt"
    code, out, _ = run(capsys, "classifier", "train", "--dataset", "digits", "--epochs", "2", "--out", str(out_file))
    assert code == 0 and out_file.is_file()
    r = json.loads(out)
    assert r["path"] == str(out_file) and 0 <= r["test_accuracy"] <= 1 and r["trained_on"].startswith("digits")
    code, out, _ = run(capsys, "classifier", "info", "--classifier", str(out_file))
    info = json.loads(out)
    assert code == 0 and info["source"] == "path" and info["family"] == "digits" and info["arch"] == "cnn"
    # the card states how the classifier reads noisy test images: the check's own numbers
    card = info["noise_check"]
    from flowgan.data import load_dataset as _load
    from flowgan.metrics.noise import check_classifier

    check = check_classifier(_load("digits"), str(out_file), split="test")
    assert [r["noise"] for r in card["rows"]] == [r["noise"] for r in check["rows"]]
    for row, ref in zip(card["rows"], check["rows"]):
        assert row["accuracy"] == ref["accuracy"] and row["is"] == ref["is"]
        assert row["is_retained"] == pytest.approx(ref["is"] / check["rows"][0]["is"])
    assert card["rows"][0]["noise"] == "clean" and card["rows"][0]["accuracy"] == pytest.approx(r["test_accuracy"])
    code, out, _ = run(capsys, "classifier", "info", "--dataset", "mnist")
    assert code == 0 and json.loads(out)["source"] == "shipped"
    # a classifier given by path scores its dataset
    code, out, _ = run(capsys, "score", "--dataset", "digits", "--metrics", "is,mode", "--classifier", str(out_file))
    assert code == 0
    from flowgan.data import load_dataset
    from flowgan.metrics import score_split

    lib = score_split(load_dataset("digits"), "test", ["is", "mode"], classifier=str(out_file))
    scored = json.loads(out)
    assert (scored["is"], scored["mode"], scored["classifier_sha256"]) == (
        lib["is"],
        lib["mode"],
        lib["classifier_sha256"],
    )


def test_trained_classifiers_do_not_change_the_default_scores(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWGAN_CACHE", str(tmp_path / "cache"))
    argv = ["score", "--dataset", "mnist5k", "--split", "test", "--metrics", "is,mode", "--samples", "200"]
    code, before, _ = run(capsys, *argv)
    assert code == 0
    for dataset in ("digits", "mnist5k"):
        code, out, err = run(capsys, "classifier", "train", "--dataset", dataset, "--epochs", "1")
        assert code == 0 and (tmp_path / "cache" / "classifiers" / f"{dataset}.pt").is_file()
        assert f"--classifier {dataset}" in err
    code, after, _ = run(capsys, *argv)

    def strip(text):
        return {k: v for k, v in json.loads(text).items() if k != "score_seconds"}

    assert code == 0 and strip(after) == strip(before)
    code, out, _ = run(capsys, *argv, "--classifier", "mnist5k")
    named = json.loads(out)
    assert (
        code == 0
        and named["classifier_name"] == "mnist5k"
        and named["classifier_source"] == "cache"
        and named["mode"] != strip(before)["mode"]
    )
    code, out, _ = run(capsys, "classifier", "list")
    names = {r["name"]: r for r in json.loads(out)}
    assert (
        code == 0
        and {"mnist-clean", "mnist5k", "digits"} <= set(names)
        and names["digits"]["trained_on"].startswith("digits")
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["score", "--dataset", "mnist5k", "--metrics", "is,bleu"], "unknown score"),
        (["score", "--dataset", "mnist5k", "--classifier", "/no/such/file.pt"], "--classifier"),
        (["score", "--dataset", "digits"], "flowgan classifier train --dataset digits"),
        (["score", "--dataset", "mnist5k", "--classifier", "no-such-name"], "no classifier named 'no-such-name'"),
        (["score", "--dataset", "mnist5k", "--samples", "1"], "--samples"),
        (["classifier", "train", "--dataset", "/no/such/data.npz"], "does not exist"),
        (["classifier", "train", "--dataset", "mnist5k", "--epochs", "0"], "--epochs"),
        (["evaluate", "/no/such/run", "--metrics", "is"], "neither a run directory"),
    ],
)
def test_bad_input_is_one_line(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err)
    assert message in err


def test_inception_without_weights_is_one_line(capsys, monkeypatch, tmp_path):
    pytest.importorskip("torch_fidelity")
    monkeypatch.setenv("FLOWGAN_INCEPTION_WEIGHTS", str(tmp_path / "weights-inception.pth"))
    code, _, err = run(capsys, "score", "--dataset", "mnist5k", "--metrics", "is", "--classifier", "inception")
    assert_one_line_error(code, err)
    assert "Inception-v3 weights not found" in err and "weights-inception.pth" in err
