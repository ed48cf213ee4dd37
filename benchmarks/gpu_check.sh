#!/usr/bin/env bash
# A short GPU check for a lent accelerator machine: environment, matmul peak, and a few hundred
# training steps of the small and the paper models (MLE and ADV), printing images/s and the
# NICE step's ratio to the fp32 and bf16 matmul peaks. Run from the repository root:
#   bash benchmarks/gpu_check.sh            (needs python with torch + CUDA; installs flowgan -e)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
$PY -c "import flowgan" 2>/dev/null || $PY -m pip install -q -e . >/dev/null
$PY - <<'PYEOF'
import tempfile, time, torch, sys
sys.path.insert(0, "benchmarks")
from common import machine, matmul_flops, linear_macs
assert torch.cuda.is_available(), "no CUDA device"
print("machine:", machine())
p32 = matmul_flops(8192, torch.float32, "cuda"); p16 = matmul_flops(8192, torch.bfloat16, "cuda")
print(f"matmul peak: fp32(tf32 off) {p32/1e12:.1f} TFLOP/s, bf16 {p16/1e12:.1f} TFLOP/s")
from flowgan.config import TrainConfig
from flowgan.data import load_dataset
from flowgan.training import Trainer
data = {"mnist5k": load_dataset("mnist5k")}
try:
    data["cifar"] = load_dataset("shared/data/cifar10-5k/cifar10-5k.npz")
except Exception as e:
    print("cifar10-5k not found, Real-NVP runs on mnist5k:", e)
def bench(model, objective, batch, precision="fp32", steps=200, ds="mnist5k", compile=False):
    d = data.get(ds, data["mnist5k"])
    cfg = TrainConfig(data=d.name, model=model, objective=objective, batch_size=batch, max_steps=10**9, precision=precision, compile=compile, device="cuda")
    with tempfile.TemporaryDirectory() as tmp:
        t = Trainer(cfg, tmp, data=d, progress=False)
        for _ in range(10): t.train_step()
        torch.cuda.synchronize(); start = time.perf_counter()
        for _ in range(steps): t.train_step()
        torch.cuda.synchronize(); sec = (time.perf_counter() - start) / steps
        macs = linear_macs(t.model, batch)
    per = 1 + (t.objective.critic_steps if objective != "mle" else 0)
    line = f"{model:16s} {objective:8s} {precision:5s} batch {batch:4d}: {batch/sec:9.0f} gen-images/s ({sec*1e3:.1f} ms/step)"
    if macs and objective == "mle":
        line += f"; NICE FLOP rate {6*macs/sec/1e12:.2f} TFLOP/s = {6*macs/sec/(p16 if precision=='bf16' else p32):.2f}x peak"
    print(line, flush=True)
for prec in ("fp32", "bf16"):
    bench("nice-mnist", "mle", 100, prec); bench("nice-mnist", "mle", 500, prec); bench("nice-mnist", "mle", 2000, prec)
bench("nice-small", "mle", 100)
bench("nice-mnist", "wgan-gp", 100, steps=50)
bench("realnvp-small", "mle", 64, ds="cifar", steps=50)
bench("realnvp-cifar10", "mle", 64, ds="cifar", steps=30)
bench("realnvp-cifar10", "mle", 64, "bf16", ds="cifar", steps=30)
bench("realnvp-cifar10", "wgan-gp", 64, ds="cifar", steps=10)
PYEOF
