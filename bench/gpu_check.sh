#!/usr/bin/env bash
# One command for a GPU machine: the gpu tests, the step benchmarks, quantized loading.
#
#   bash bench/gpu_check.sh [--device cuda|cpu] [--quick]
#
# Writes everything under $OUT (./gpu-check/ when unset): env.txt, ceilings.txt,
# pytest-gpu.txt, gpu_step.txt, model_step.txt, quantization.txt and summary.txt (one
# line per part: ok, failed rc=N, or skipped and why). Installs nothing; each part has
# its own time limit so the whole stays inside 8 minutes on one H200. --quick uses tiny
# sizes (a smoke test of this script, on the CPU too).
set -u

DEVICE=cuda
QUICK=0
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE="$2"; shift 2 ;;
        --device=*) DEVICE="${1#--device=}"; shift ;;
        --quick) QUICK=1; shift ;;
        -h|--help) sed -n 2,10p "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1 (use --device cuda|cpu, --quick)" >&2; exit 2 ;;
    esac
done
case "$DEVICE" in cuda|cpu) ;; *) echo "gpu_check.sh: --device is cuda or cpu, not $DEVICE" >&2; exit 2 ;; esac

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 1
OUT="${OUT:-$ROOT/gpu-check}"
mkdir -p "$OUT"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ] && "$ROOT/.venv/bin/python" -c "import torch" 2>/dev/null; then
        PYTHON="$ROOT/.venv/bin/python"
    else
        PYTHON=python3
    fi
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
STARTED=$(date +%s)

# part NAME LIMIT_S COMMAND...: runs it into $OUT/NAME.txt and notes the outcome.
part() {
    local name="$1" limit="$2"
    shift 2
    echo "== $name (limit ${limit}s): $*" | tee "$OUT/$name.txt"
    timeout --kill-after=10 "$limit" "$@" >> "$OUT/$name.txt" 2>&1
    local rc=$?
    if [ $rc -eq 0 ]; then
        echo "$name: ok" >> "$SUMMARY"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        echo "$name: timed out after ${limit}s (partial output in $name.txt)" >> "$SUMMARY"
    else
        echo "$name: failed rc=$rc (see $name.txt)" >> "$SUMMARY"
    fi
    tail -n 25 "$OUT/$name.txt"
}

skip() {
    echo "$1: skipped: $2" | tee "$OUT/$1.txt" >> "$SUMMARY"
}

{
    echo "date: $(date -u)"; echo "device: $DEVICE; quick: $QUICK; python: $PYTHON"
    "$PYTHON" -c "import sys, torch, transformers; print(sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
    command -v nvidia-smi >/dev/null && nvidia-smi
} > "$OUT/env.txt" 2>&1

if [ "$DEVICE" = cuda ] && ! "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_check.sh: --device cuda but torch sees no CUDA device (use --device cpu)" | tee -a "$SUMMARY" >&2
    exit 1
fi

# --- ceilings: what this device does at best, for gpu_step's rooflines --------------------
if [ $QUICK -eq 1 ]; then SIZE=1024; COPY_MB=64; else SIZE=8192; COPY_MB=1024; fi
part ceilings 60 "$PYTHON" - "$DEVICE" "$SIZE" "$COPY_MB" "$OUT/ceilings.env" <<'EOF'
import sys, time, torch
device, n, copy_mb, env = torch.device(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
def best(fn, repeats):
    fn(); sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); sync(); times.append(time.perf_counter() - t)
    return min(times)
a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
flops = 2 * n**3 / best(lambda: a @ b, 10)
src = torch.empty(copy_mb * 2**20, dtype=torch.uint8, device=device)
dst = torch.empty_like(src)
bandwidth = 2 * src.numel() / best(lambda: dst.copy_(src), 10)  # read + write
print(f"{str(dtype).removeprefix('torch.')} {n}^3 matmul: {flops / 1e12:.1f} TFLOP/s")
print(f"device copy of {copy_mb} MiB: {bandwidth / 1e9:.0f} GB/s (read + write)")
open(env, "w").write(f"PEAK_FLOPS={flops:.4g}\nBANDWIDTH={bandwidth:.4g}\n")
EOF
PEAK_FLOPS=989e12 BANDWIDTH=3.35e12
# shellcheck disable=SC1091
[ -f "$OUT/ceilings.env" ] && . "$OUT/ceilings.env"

# --- the tests marked gpu -------------------------------------------------------------------
if "$PYTHON" -c "import pytest" 2>/dev/null; then
    part pytest-gpu 120 "$PYTHON" -m pytest -q -m gpu -p no:cacheprovider tests
    # pytest exits 5 when every test was deselected or none collected: not a failure.
    sed -i 's/^pytest-gpu: failed rc=5 .*/pytest-gpu: ok (no gpu tests collected)/' "$SUMMARY"
else
    skip pytest-gpu "pytest is not installed for $PYTHON (this script installs nothing)"
fi

# --- step benchmarks ------------------------------------------------------------------------
if [ $QUICK -eq 1 ]; then
    part gpu_step 150 "$PYTHON" bench/gpu_step.py --device "$DEVICE" --models 1b --steps 1 \
        --new-tokens 2 --tiles 1 --prompt-tokens 16 --peak-flops "$PEAK_FLOPS" --bandwidth "$BANDWIDTH"
    part model_step 120 "$PYTHON" bench/model_step.py --device "$DEVICE" --model tiny --steps 1 --new-tokens 2
else
    part gpu_step 200 "$PYTHON" bench/gpu_step.py --device "$DEVICE" --models 8b,2b --dtype bfloat16 \
        --peak-flops "$PEAK_FLOPS" --bandwidth "$BANDWIDTH"
    # The cache rows (first token) and Best-of-4 against one sample (last token of 32).
    part model_step 120 "$PYTHON" bench/model_step.py --device "$DEVICE" --steps 3 --new-tokens 32
fi

# --- quantized loading (bitsandbytes, CUDA only) ----------------------------------------------
if [ "$DEVICE" != cuda ]; then
    skip quantization "bitsandbytes loading needs CUDA"
elif ! "$PYTHON" -c "import bitsandbytes" 2>/dev/null; then
    skip quantization "bitsandbytes is not installed (this script installs nothing)"
else
    part quantization 90 "$PYTHON" - <<'EOF'
from model.base import GenerationConfig, Message
from model.internvl import InternVLModel
for bits in ("8bit", "4bit"):
    vlm = InternVLModel.from_pretrained("tiny", quantization=bits)
    reply = vlm.generate([Message.user("Say hello.")], GenerationConfig(max_new_tokens=4))
    print(f"{bits}: loaded, {reply.output_tokens} tokens generated")
EOF
fi

echo "total: $(( $(date +%s) - STARTED )) s" >> "$SUMMARY"
echo; echo "== summary ($OUT)"; cat "$SUMMARY"
