"""Saved runs read back as typed objects: ``load_run`` and the one checkpoint-choosing rule."""

import json
import shutil

import pytest
import torch

from flowgan.checkpoint import AUTO_CHECKPOINTS, choose_checkpoint, read_run_config, resolve_checkpoint
from flowgan.config import TrainConfig
from flowgan.errors import CheckpointError, FlowganError
from flowgan.rundir import check_output, read_metrics
from flowgan.runs import Run, load_run
from flowgan.training import Trainer

CONFIG = TrainConfig(dataset="digits", model="nice-small", max_steps=3, eval_every=3, train_eval_samples=50, seed=2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "run"
    Trainer(CONFIG, run, progress=False).fit()
    return run


@pytest.fixture
def run_dir(trained, tmp_path):
    """A fresh copy of the trained run (best_nll.pt and latest.pt, no score checkpoints)."""
    return shutil.copytree(trained, tmp_path / "run")


def _set_scores(run_dir, scores):
    """Make the run one that computes ``scores``: in its latest checkpoint, the one truth of its
    configuration (config.json is not read when the checkpoint carries one)."""
    path = run_dir / "checkpoints" / "latest.pt"
    state = torch.load(path, weights_only=True)
    state["config"]["score_metrics"] = scores
    torch.save(state, path)


def test_load_run_gives_the_model_the_typed_config_and_the_step(run_dir):
    run = load_run(run_dir)
    assert isinstance(run, Run) and isinstance(run.config, TrainConfig)
    assert run.config == CONFIG  # the checkpoint's own configuration, as trained
    assert run.which == "best_nll" and run.checkpoint == run_dir / "checkpoints" / "best_nll.pt" and run.path == run_dir
    assert run.step == 3 and run.state["step"] == 3 and run.dim == 64
    assert not run.model.training and next(run.model.parameters()).dtype == torch.float32
    # the model is the trained one: its log-likelihood is that of the checkpoint's weights
    again = load_run(run.checkpoint)  # a checkpoint file: itself, its run is the folder above checkpoints/
    assert again.which == "best_nll" and again.path == run_dir
    x = torch.rand(4, *run.model.shape, dtype=torch.float32)
    torch.testing.assert_close(run.model.log_prob(x), again.model.log_prob(x))


def test_auto_prefers_the_best_sample_score_then_best_nll_then_latest(run_dir):
    ck = run_dir / "checkpoints"
    assert AUTO_CHECKPOINTS == ("best_mode", "best_is", "best_nll", "latest")
    assert choose_checkpoint(run_dir, "auto") == (ck / "best_nll.pt", "best_nll")
    shutil.copyfile(ck / "latest.pt", ck / "best_is.pt")
    assert choose_checkpoint(run_dir, "auto") == (ck / "best_is.pt", "best_is")
    shutil.copyfile(ck / "latest.pt", ck / "best_mode.pt")
    assert load_run(run_dir, "auto").which == "best_mode"
    for name in ("best_mode", "best_is", "best_nll"):
        (ck / f"{name}.pt").unlink()
    assert choose_checkpoint(run_dir, "auto") == (ck / "latest.pt", "latest")


def test_a_best_checkpoint_not_written_yet_falls_back_to_latest(run_dir):
    ck = run_dir / "checkpoints"
    (ck / "best_nll.pt").unlink()  # as before the first evaluation
    assert load_run(run_dir, "best_nll").which == "latest"
    assert resolve_checkpoint(run_dir) == ck / "latest.pt"
    _set_scores(run_dir, ["mode"])  # a score the run computes but has no finite value of yet
    assert choose_checkpoint(run_dir, "best_mode") == (ck / "latest.pt", "latest")


def test_a_checkpoint_the_run_never_writes_is_an_error_naming_what_it_has(run_dir):
    for which in ("best_mode", "best_fid", "step_100"):  # the run computes no scores
        with pytest.raises(CheckpointError) as e:
            load_run(run_dir, which)
        msg = str(e.value)
        assert "\n" not in msg and repr(which) in msg and "best_nll, latest" in msg


def test_the_latest_checkpoint_is_the_runs_config_and_without_any_every_best_name_falls_back(run_dir):
    info = json.loads((run_dir / "config.json").read_text())
    info["config"]["lr"] = 0.5  # an edited config.json does not change what the run was
    (run_dir / "config.json").write_text(json.dumps(info))
    assert read_run_config(run_dir) == CONFIG
    (run_dir / "config.json").unlink()
    assert read_run_config(run_dir) == CONFIG
    path = run_dir / "checkpoints" / "latest.pt"
    state = torch.load(path, weights_only=True)
    del state["config"]
    torch.save(state, path)
    assert read_run_config(run_dir) is None
    assert choose_checkpoint(run_dir, "best_is")[1] == "latest"
    assert load_run(run_dir, "best_nll").config == CONFIG  # the checkpoint still carries it


def test_missing_and_corrupt_checkpoints_are_one_line_checkpoint_errors(run_dir, tmp_path):
    with pytest.raises(CheckpointError, match="neither a run directory nor a checkpoint file"):
        load_run(tmp_path / "no-such-run")
    empty = tmp_path / "empty"
    (empty / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="has no checkpoints"):
        load_run(empty)
    (run_dir / "checkpoints" / "best_nll.pt").write_bytes(b"\x80\x02not a checkpoint")
    with pytest.raises(CheckpointError) as e:
        load_run(run_dir)
    assert "corrupt or not a flowgan checkpoint" in str(e.value) and "\n" not in str(e.value)


def test_old_configs_with_unknown_and_missing_keys_still_load(run_dir):
    """Runs written by older or newer versions: unknown keys are ignored, missing ones defaulted."""
    path = run_dir / "checkpoints" / "best_nll.pt"
    state = torch.load(path, weights_only=True)
    state["config"]["an_option_of_another_version"] = 3
    del state["config"]["collapse_samples"], state["config"]["score_classifier"]
    torch.save(state, path)
    info = json.loads((run_dir / "config.json").read_text())
    info["config"]["an_option_of_another_version"] = 3
    del info["config"]["collapse_samples"]
    (run_dir / "config.json").write_text(json.dumps(info))
    run = load_run(run_dir)
    assert (
        run.config.lam == CONFIG.lam
        and run.config.dataset == "digits"
        and run.config.collapse_samples == TrainConfig.collapse_samples
    )
    assert read_run_config(run_dir).seed == 2
    state["config"]["lr"] = -1.0  # a value no version accepts: one line naming the file
    torch.save(state, path)
    with pytest.raises(
        CheckpointError, match=r"best_nll.pt: the saved training configuration is invalid: lr \(--lr\) must be > 0"
    ):
        load_run(run_dir)


@pytest.mark.parametrize("name", ["../../other/checkpoints/latest", "sub/latest", "..", ".hidden", "", " latest"])
def test_a_checkpoint_name_never_leaves_its_run(tmp_path, name):
    """``--checkpoint`` is a name inside the run (one place builds checkpoint paths): a path that
    would read another run's checkpoint as this run's is refused in one line."""
    from flowgan.checkpoint import checkpoint_path

    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="is not a checkpoint name"):
        checkpoint_path(tmp_path / "run", name)
    with pytest.raises(CheckpointError, match="is not a checkpoint name"):
        choose_checkpoint(tmp_path / "run", name)
    assert checkpoint_path(tmp_path / "run", "best_mode") == tmp_path / "run" / "checkpoints" / "best_mode.pt"


def test_check_output_is_decided_by_the_nearest_run_or_reproduction(tmp_path):
    """A reproduction owns reproduce.json, claims.json, report.md and runs/; a run inside its runs/
    owns its own files, and a file beside them (an eval of that run) is allowed."""
    repro = tmp_path / "repro"
    run = repro / "runs" / "mle"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (repro / "reproduce.json").write_text("{}")
    for bad in (repro / "report.md", repro / "runs" / "x.png", run / "config.json", run / "checkpoints" / "a.pt"):
        with pytest.raises(FlowganError, match="would overwrite"):
            check_output(bad, "-o")
    for fine in (run / "eval" / "e.json", repro / "figure.png", tmp_path / "elsewhere.json", None):
        check_output(fine, "-o")


MALFORMED = [
    b'{"kind": "train", "step": 3, "loss": 1.',  # cut by a kill
    b"not json",
    b"[1, 2]",
    b"7",
    b'"text"',
    b'{"kind": "eval", "step": "3"}',
    b'{"kind": "eval", "step": -1}',
    b'{"kind": "eval", "step": true}',
    b'{"kind": 5, "step": 3}',
    b'{"kind": "eval", "step": 3, "val_nll_nats": "low"}',
    b'{"kind": "eval", "step": 3, "val_nll_nats": [1]}',
    b'{"kind": "event", "step": 3, "event": 1}',
    b'{"kind": "train", "step": 3, "loss": 1.0, "x": "\xff\xfe"}',  # not UTF-8
]


def test_one_reader_skips_and_counts_every_malformed_metrics_line(tmp_path):
    """Every malformed line (cut, not JSON, not an object, a step that is not an integer >= 0,
    text where a number belongs, bytes that are not UTF-8) is skipped and counted the same way,
    by read_metrics, by the report's reader and on resume (truncate_metrics)."""
    from flowgan.reproduce.inputs import _read_metrics
    from flowgan.rundir import read_records, truncate_metrics

    good = [
        b'{"kind": "train", "step": 1, "loss": 2.5, "lr": 0.001}',
        b'{"kind": "eval", "step": 2, "val_nll_nats": NaN, "classifier": "mnist-robust@abc"}',
        b'{"kind": "event", "step": 5, "event": "interrupted", "signal": "SIGTERM"}',
    ]
    (tmp_path / "metrics.jsonl").write_bytes(b"\n".join(good[:1] + MALFORMED + good[1:]) + b"\n")
    with pytest.warns(RuntimeWarning, match=f"skipped {len(MALFORMED)} malformed"):
        records, skipped = read_records(tmp_path / "metrics.jsonl")
    assert skipped == len(MALFORMED) and [r["step"] for _, r in records] == [1, 2, 5]
    with pytest.warns(RuntimeWarning):
        assert [r["step"] for r in read_metrics(tmp_path, "eval")] == [2]
    with pytest.warns(RuntimeWarning):
        evals, trains, skipped = _read_metrics(tmp_path)
    assert (len(evals), len(trains), skipped) == (1, 1, len(MALFORMED))
    with pytest.warns(RuntimeWarning):
        truncate_metrics(tmp_path / "metrics.jsonl", 2)
    records, skipped = read_records(tmp_path / "metrics.jsonl")
    assert skipped == 0 and [r["step"] for _, r in records] == [1, 2]


def test_the_report_skips_and_counts_malformed_reproduce_json_fields(tmp_path):
    from flowgan.reproduce.inputs import ReproductionData
    from flowgan.reproduce.report import build_report

    (tmp_path / "reproduce.json").write_text("[1, 2]")
    with pytest.warns(RuntimeWarning, match="not a readable JSON object"):
        assert ReproductionData(tmp_path).meta == {}
    meta = {"preset": "quick", "stages": {"train-mle": "done", "gmm": {"status": "done", "seconds": 3}},
            "notes": [1, "a note"], "paper": "svhn", "steps": "300", "unit": "nats"}  # fmt: skip
    (tmp_path / "reproduce.json").write_text(json.dumps(meta))
    (tmp_path / "runs" / "mle").mkdir(parents=True)
    (tmp_path / "runs" / "mle" / "metrics.jsonl").write_text('{"kind": "eval", "step": "x"}\n')
    with pytest.warns(RuntimeWarning, match="malformed"):
        d = ReproductionData(tmp_path)
    assert d.meta == {"preset": "quick", "stages": {"gmm": {"status": "done", "seconds": 3}},
                      "notes": ["a note"], "unit": "nats"}  # fmt: skip
    assert d.skipped == {"reproduce.json": 4, "runs/mle/metrics.jsonl": 1}
    with pytest.warns(RuntimeWarning):
        report = build_report(tmp_path).read_text()
    assert "4 malformed record(s) of reproduce.json skipped" in report
    assert "1 malformed record(s) of runs/mle/metrics.jsonl skipped" in report
