"""Training steps per second of two revisions, measured in alternation in one run: is head slower?

    python benchmarks/compare_revisions.py --base REV [--head REV-or-PATH] [--rounds 5]
        [--steps N | --mle-steps 120 --adv-steps 24] [--threads N] [--cases mle adv] [--json FILE]

``--base`` (and ``--head`` when it is a revision) is checked out into a temporary detached
``git worktree`` (removed at the end, also on an error, Ctrl-C or SIGTERM); without ``--head`` the
current working tree is measured, uncommitted changes included; ``--head`` may also name a
directory (another worktree or checkout). Only the command line and the run directory are used,
never flowgan's Python API, so revisions whose internals differ compare alike: each run is

    python -m flowgan train --dataset mnist5k --model nice-mnist --objective mle --max-steps S
        --batch-size 100 --seed 0 --device cpu --eval-every 1000000 --log-every S/12 --no-progress
        --out TMP/...

in a subprocess with ``PYTHONPATH=<tree>/src`` (the ADV case: ``--objective wgan-gp --lam 0
--n-critic 5 --critic dcgan-mnist``, one step = 5 critic updates + 1 generator update; evaluation
options that shrink the evaluations at step 0 and at the end are passed where a revision's
``train --help`` has them; they do not touch the timed windows). Cases: ``mle`` (120 steps) and
``adv`` (24 steps; each of its steps takes ~5x an MLE step); ``--steps`` sets both.

Per run: ``steps_per_s`` of the ``kind: "train"`` lines of metrics.jsonl (one per log window,
evaluation time excluded), the first window dropped as warm-up, the median of the rest. Each round
runs every case once at base and once at head, base first (ABAB...), so the machine's drift
(a shared 2-core guest drifts by ±25% over tens of seconds) hits both sides alike.

Verdict, per case (the rule is also printed):

    ratio_r = head_r / base_r           (steps/s of the two runs of round r)
    noise   = (max_r base_r - min_r base_r) / median_r base_r   (0 with one round)
    "not slower"  if  median_r ratio_r >= 1 - noise,  else "SLOWER"

i.e. head is slower only if its median ratio falls below 1 by more than base varies among its own
rounds (and "faster beyond the noise" is added where it exceeds 1 + noise, from 2 rounds on). With
one round there is no noise estimate and the rule is ratio >= 1: use --rounds >= 3 for a verdict.
The exit status is 1 when any case is SLOWER, 0 otherwise, 2 on an error (a revision that
does not exist, a run that fails).

Other jobs: every run line shows the spread of its windows and the median number of threads
runnable on the whole machine while it trained (/proc/stat ``procs_running``, ours included); a
run with more runnable threads than CPUs is marked OVERSUBSCRIBED, and a warning follows the table
when any run was, or when base's spread exceeds 0.25. On a 2-core machine a 2-thread run that
shares its cores with one or two busy threads of another job ran 8-15x slower (OpenMP's threads
wait for each other at every parallel region), which no alternation repairs and which makes the
noise, and with it the bar, huge: where other jobs run, use ``--threads 1``.

Duration with the defaults (5 rounds x 2 cases x 2 revisions = 20 training runs, start-up and the
two small evaluations of each run included): about 6 minutes at 2 threads on a quiet 2-core CPU
(runs of 17-18 s), about 9 minutes with ``--threads 1`` (runs of 25-30 s).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import cpu_flags, cpu_model  # noqa: E402

#: the cases: what each trains, and its default generator updates per run
CASES = {
    "mle": {"args": ["--objective", "mle"], "steps": 120, "label": "MLE"},
    "adv": {
        "args": ["--objective", "wgan-gp", "--lam", "0", "--n-critic", "5", "--critic", "dcgan-mnist"],
        "steps": 24,
        "label": "ADV (wgan-gp, n_critic 5, dcgan-mnist critic)",
    },
}
#: flags every run needs; a revision whose ``train --help`` lacks one cannot be compared
COMMON = ["--dataset", "mnist5k", "--model", "nice-mnist", "--batch-size", "100", "--seed", "0"]
#: smaller evaluations at step 0 and at the end (outside the timed windows), where a revision has them
OPTIONAL = {
    "--eval-samples": "100",
    "--train-eval-samples": "100",
    "--grid-samples": "4",
    "--collapse-samples": "0",
}


def fail(message: str):
    """Stop with exit status 2 (1 is the verdict SLOWER); the worktrees are removed on the way out."""
    print(message, file=sys.stderr)
    raise SystemExit(2)


class Terminated(Exception):
    """SIGTERM/SIGHUP, turned into an exception so that the worktrees are removed."""


def _on_signal(signum, frame):
    raise Terminated(f"signal {signum}")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def describe(repo: Path, rev: str) -> str:
    return git(repo, "log", "-1", "--format=%h %s", rev)


class Trees:
    """The two source trees; temporary worktrees are removed by :meth:`close`."""

    def __init__(self, repo: Path, tmp: Path):
        self.repo, self.tmp, self.created = repo, tmp, []

    def checkout(self, rev: str, name: str) -> tuple[Path, str]:
        try:
            sha = git(self.repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        except subprocess.CalledProcessError:
            fail(f"{rev!r} is not a revision of {self.repo} (nor a directory with src/flowgan)")
        path = self.tmp / name
        git(self.repo, "worktree", "add", "--detach", "--quiet", str(path), sha)
        self.created.append(path)
        return path, f"{rev} = {describe(self.repo, sha)} (temporary worktree)"

    def head(self, spec: str | None) -> tuple[Path, str]:
        if spec is None or (Path(spec) / "src" / "flowgan").is_dir():
            path = Path(spec).resolve() if spec else self.repo
            try:
                dirty = bool(git(path, "status", "--porcelain", "--untracked-files=no"))
                state = f"HEAD {describe(path, 'HEAD')}{', with uncommitted changes' if dirty else ''}"
            except subprocess.CalledProcessError:
                state = "not a git checkout"
            return path, f"working tree {path} ({state})"
        return self.checkout(spec, "head")

    def close(self) -> None:
        git_ = ["git", "-C", str(self.repo), "worktree"]
        for path in self.created:
            subprocess.run([*git_, "remove", "--force", str(path)], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        subprocess.run([*git_, "prune"], capture_output=True)


def child_env(tree: Path, threads: int | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def train_flags(tree: Path, env: dict[str, str]) -> set[str]:
    """The option names of this revision's ``flowgan train --help``."""
    r = subprocess.run(
        [sys.executable, "-m", "flowgan", "train", "--help"], env=env, capture_output=True, text=True, cwd=tree
    )
    if r.returncode != 0:
        fail(f"{tree}: `python -m flowgan train --help` failed:\n{r.stderr[-2000:]}")
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", r.stdout))


def command(case: str, steps: int, windows: int, device: str, flags: set[str], out: Path) -> list[str]:
    args = [*COMMON, *CASES[case]["args"], "--max-steps", str(steps), "--device", device]
    args += ["--eval-every", "1000000", "--log-every", str(max(1, steps // windows)), "--no-progress"]
    missing = sorted({a for a in args if a.startswith("--")} - flags)
    if missing:
        fail(f"this revision's `flowgan train` has no {', '.join(missing)}: it cannot be compared")
    for flag, value in OPTIONAL.items():
        if flag in flags:
            args += [flag, value]
    return [sys.executable, "-m", "flowgan", "train", *args, "--out", str(out)]


def runnable() -> int | None:
    """Threads runnable on the whole machine right now, this one excluded (/proc/stat procs_running)."""
    try:
        with open("/proc/stat") as f:
            return next(int(line.split()[1]) - 1 for line in f if line.startswith("procs_running"))
    except (OSError, StopIteration, ValueError):
        return None


class Sampler:
    """Samples :func:`runnable` every half second while a run trains (to see other jobs' load)."""

    def __init__(self):
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            n = runnable()
            if n is not None:
                self.samples.append(n)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None


def run_once(cmd: list[str], env: dict[str, str], out: Path, cwd: Path) -> dict:
    """Train once; the median steps/s of its log windows (the first dropped) and what the run reports."""
    start = time.perf_counter()
    with open(out.parent / f"{out.name}.log", "w") as log, Sampler() as sampler:
        r = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
    wall = time.perf_counter() - start
    if r.returncode != 0:
        tail = (out.parent / f"{out.name}.log").read_text()[-3000:]
        fail(f"run failed (exit {r.returncode}): {' '.join(cmd)}\n{tail}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    trains = [row for row in rows if row.get("kind") == "train" and "steps_per_s" in row]
    rates = [row["steps_per_s"] for row in sorted(trains, key=lambda x: x["step"])]
    if len(rates) < 2:
        fail(f"{out}: {len(rates)} train log line(s); more steps or more --windows are needed")
    env_info = {}
    config = out / "config.json"
    if config.exists():
        env_info = json.loads(config.read_text()).get("environment", {}) or {}
    kept = rates[1:]
    return {
        "steps_per_s": statistics.median(kept),
        "windows": len(kept),
        "window_range": (min(kept), max(kept)),
        "wall_s": wall,
        "runnable": sampler.median,
        "env": env_info,
    }


def verdict(base: list[float], head: list[float]) -> dict:
    ratios = [h / b for b, h in zip(base, head)]
    noise = (max(base) - min(base)) / statistics.median(base) if len(base) > 1 else 0.0
    median = statistics.median(ratios)
    ok = median >= 1 - noise
    return {
        "base": statistics.median(base),
        "head": statistics.median(head),
        "ratios": ratios,
        "ratio": median,
        "noise": noise,
        "not_slower": ok,
        "faster": len(base) > 1 and median > 1 + noise,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="the revision to compare against (any git revision)")
    p.add_argument("--head", help="a revision or a directory (default: the current working tree, uncommitted included)")
    p.add_argument("--rounds", type=int, default=5, help="rounds; each runs every case at base, then at head")
    p.add_argument("--steps", type=int, help="generator updates per run of every case (sets both of the following)")
    p.add_argument("--mle-steps", type=int, default=CASES["mle"]["steps"])
    p.add_argument("--adv-steps", type=int, default=CASES["adv"]["steps"])
    p.add_argument("--windows", type=int, default=12, help="log windows per run (--log-every = steps / windows)")
    p.add_argument("--threads", type=int, help="OMP/MKL threads of the runs (default: torch's default)")
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args()
    steps = {c: args.steps or getattr(args, f"{c}_steps") for c in CASES}
    if args.rounds < 1 or min(steps.values()) < 2 or args.windows < 2:
        p.error("--rounds must be >= 1, steps >= 2, --windows >= 2")

    repo = Path(git(HERE, "rev-parse", "--show-toplevel"))
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    trees = Trees(repo, Path(tempfile.mkdtemp(prefix="flowgan-compare-")))
    started = time.perf_counter()
    try:
        base_tree, base_desc = trees.checkout(args.base, "base")
        head_tree, head_desc = trees.head(args.head)
        sides = {"base": base_tree, "head": head_tree}
        envs = {s: child_env(t, args.threads) for s, t in sides.items()}
        flags = {s: train_flags(t, envs[s]) for s, t in sides.items()}
        runs_dir = trees.tmp / "runs"
        runs_dir.mkdir()

        import torch  # the runs' interpreter is this one (only the source trees differ)

        flag_set = cpu_flags()
        has = ", ".join(f"{f} {'yes' if f in flag_set else 'no'}" for f in ("amx_bf16", "avx512_bf16"))
        print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs; {has})")
        cpus = os.cpu_count() or 1
        idle = []
        for _ in range(5):
            idle.append(runnable())
            time.sleep(0.2)
        others = statistics.median(idle) if None not in idle else None
        print(
            f"torch {torch.__version__}; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
            f"runnable threads of other processes now: {others if others is not None else 'unknown'}"
        )
        want = args.threads or torch.get_num_threads()
        if others and others + want > cpus:
            print(
                f"WARNING: {others:g} other runnable thread(s) + {want} per run > {cpus} CPUs: OpenMP runs that share "
                "their cores slow down by up to 10x; use --threads 1 or a quieter moment",
                flush=True,
            )
        print(f"base: {base_desc}")
        print(f"head: {head_desc}")
        print(
            f"nice-mnist on mnist5k, batch 100, device {args.device}; "
            + "; ".join(f"{c}: {steps[c]} steps/run" for c in args.cases)
            + f"; {args.rounds} rounds, base and head alternated",
            flush=True,
        )

        results: dict[str, dict[str, list]] = {c: {"base": [], "head": []} for c in args.cases}
        threads_seen: set = set()
        crowded = 0
        for r in range(args.rounds):
            for case in args.cases:
                for side in ("base", "head"):
                    out = runs_dir / f"{case}-{side}-{r}"
                    cmd = command(case, steps[case], args.windows, args.device, flags[side], out)
                    res = run_once(cmd, envs[side], out, trees.tmp)
                    results[case][side].append(res["steps_per_s"])
                    threads_seen.add(res["env"].get("threads", args.threads or torch.get_num_threads()))
                    lo, hi = res["window_range"]
                    busy = res["runnable"]
                    mark = ""
                    if busy is not None and busy > cpus:
                        crowded += 1
                        mark = f"  OVERSUBSCRIBED ({busy:g} runnable threads on {cpus} CPUs)"
                    print(
                        f"round {r + 1}/{args.rounds}  {case:<3}  {side}  {res['steps_per_s']:6.3f} steps/s "
                        f"(median of {res['windows']} windows [{lo:.3f}-{hi:.3f}]; run {res['wall_s']:.0f} s; "
                        f"runnable threads {format(busy, 'g') if busy is not None else '?'}){mark}",
                        flush=True,
                    )
                    shutil.rmtree(out, ignore_errors=True)

        threads = ", ".join(str(t) for t in sorted(threads_seen))
        omp = os.environ.get("OMP_NUM_THREADS")
        origin = "--threads" if args.threads else f"OMP_NUM_THREADS={omp} inherited" if omp else "torch default"
        print()
        print(
            f"threads per run: {threads} ({origin}); "
            f"total {(time.perf_counter() - started) / 60:.1f} min; "
            f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        print(
            "rule: ratio = head/base steps/s per round; noise = (max - min) / median of base's rounds; "
            "'not slower' if median ratio >= 1 - noise"
        )
        summary = {}
        for case in args.cases:
            v = verdict(results[case]["base"], results[case]["head"])
            summary[case] = {**v, "rounds": results[case], "steps": steps[case]}
            ratios = " ".join(f"{x:.3f}" for x in v["ratios"])
            print(f"\n{CASES[case]['label']}, {steps[case]} steps per run:")
            for side in ("base", "head"):
                rounds = " ".join(f"{x:.3f}" for x in results[case][side])
                print(f"  {side}: median {v[side]:.3f} steps/s   (rounds: {rounds})")
            print(
                f"  head/base per round: {ratios}; median {v['ratio']:.3f} "
                f"[{min(v['ratios']):.3f}-{max(v['ratios']):.3f}]"
            )
            note = " (one round: no noise estimate, the rule is ratio >= 1)" if args.rounds == 1 else ""
            print(f"  noise (spread of base's rounds): {v['noise']:.3f}{note}")
            bound = f"1 - noise = {1 - v['noise']:.3f}"
            if v["not_slower"]:
                extra = "; faster beyond the noise" if v["faster"] else ""
                print(f"  verdict: not slower (median ratio {v['ratio']:.3f} >= {bound}{extra})")
            else:
                hint = "; one round cannot tell this from noise: use --rounds >= 3" if args.rounds == 1 else ""
                print(f"  verdict: SLOWER (median ratio {v['ratio']:.3f} < {bound}{hint})")
        if crowded or any(s["noise"] > 0.25 for s in summary.values()):
            print(
                f"\nWARNING: the machine was not steady ({crowded} run(s) oversubscribed; base's spread "
                f"{max(s['noise'] for s in summary.values()):.2f}): a wide noise makes 'not slower' easy to pass. "
                "Rerun with --threads 1, more --rounds, or on a quieter machine."
            )
        if args.json:
            meta = {"base": base_desc, "head": head_desc, "cpu": cpu_model(), "torch": torch.__version__}
            meta |= {"threads": sorted(threads_seen), "cpu_flags": has, "rounds": args.rounds}
            Path(args.json).write_text(json.dumps({**meta, "cases": summary}, indent=2))
        return 0 if all(s["not_slower"] for s in summary.values()) else 1
    except (KeyboardInterrupt, Terminated) as e:
        print(f"\ninterrupted ({str(e) or 'Ctrl-C'}); removing the temporary worktrees", file=sys.stderr)
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # let the clean-up finish
        trees.close()


if __name__ == "__main__":
    sys.exit(main())
