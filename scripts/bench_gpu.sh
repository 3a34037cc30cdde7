#!/usr/bin/env bash
# The whole GPU measurement of docs/models.md in one call, for a machine with an NVIDIA
# GPU, CUDA torch and onnxruntime (-gpu for its CUDA / TensorRT providers), which may
# have neither ROS nor network:
#   here (network):   make gpu-wheels      # wheels of what that machine may lack -> .gpu-wheels/
#   there:            bash scripts/bench_gpu.sh   (or: make bench-gpu)
# It installs the missing Python packages from .gpu-wheels/ (never from the network),
# runs `superglue-ros bench` on cuda (models, end-to-end frames at 640x480, 1024 points,
# K = 1/4/8, fp32/fp16/bf16, torch and onnxruntime) and writes $OUT (default bench-gpu/):
# bench_cuda.json, bench_cuda.txt (the tables) and gpu.txt (nvidia-smi).
# Then the learned default, ALIKED + LightGlue: `superglue-ros bench-onnx` (torch against
# onnxruntime CUDA / TensorRT, LightGlue's adaptive and fixed ONNX forms, K = 1/4/8) ->
# bench_onnx_cuda.json / .txt, and `bench-lightglue` (torch fp32/fp16/bf16) -> bench_lightglue.txt.
# TensorRT engines are cached in $XDG_CACHE_HOME/superglue_ros/tensorrt: the first run builds them.
#   bash scripts/bench_gpu.sh --quick   runs every command once, small, on the CPU (to test the
#                                       script on a machine without a GPU; OUT=bench-gpu-quick).
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0
if [ "${1:-}" = "--quick" ]; then QUICK=1; fi
OUT=${OUT:-$([ "$QUICK" = 1 ] && echo bench-gpu-quick || echo bench-gpu)}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
if [ "$QUICK" = 1 ]; then
  DEVICE=cpu; SIZE=(--height 120 --width 160 --keypoints 128); KS=1; REPEATS=1
else
  DEVICE=cuda; SIZE=(--height 480 --width 640 --keypoints 1024); KS=1,4,8; REPEATS=30
fi

missing=$("$PY" - <<'PYEOF'
import importlib.util
wanted = {"yaml": "pyyaml", "onnx": "onnx", "numpy": "numpy"}
print(" ".join(pip for module, pip in wanted.items() if importlib.util.find_spec(module) is None))
PYEOF
)
if [ -n "$missing" ]; then
  if [ ! -d .gpu-wheels ]; then
    echo "bench_gpu: missing Python packages ($missing) and no .gpu-wheels/ (run make gpu-wheels)"
    exit 1
  fi
  "$PY" -m pip install -q --no-index --find-links .gpu-wheels $missing
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

if [ "$QUICK" = 0 ]; then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'bench_gpu: torch sees no CUDA GPU')"
fi
nvidia-smi > "$OUT/gpu.txt" 2>&1 || echo "nvidia-smi not available" > "$OUT/gpu.txt"
# onnxruntime is timed on the GPU only where this build has a GPU provider.
runtimes=$("$PY" -c "
import onnxruntime as ort
gpu = {'CUDAExecutionProvider', 'TensorrtExecutionProvider'} & set(ort.get_available_providers())
print('torch,onnxruntime' if gpu or $QUICK else 'torch')" 2>/dev/null || echo torch)
echo "bench_gpu: runtimes $runtimes" | tee "$OUT/bench_cuda.txt"
"$PY" -m superglue_ros bench --device "$DEVICE" "${SIZE[@]}" \
  --keyframes "$KS" --precisions fp32,fp16,bf16 --runtime "$runtimes" --repeats "$REPEATS" \
  --warmup "$([ "$QUICK" = 1 ] && echo 0 || echo 5)" \
  --json "$OUT/bench_cuda.json" | tee -a "$OUT/bench_cuda.txt"
if [ "$runtimes" = "torch,onnxruntime" ]; then
  "$PY" -m superglue_ros bench-onnx --device "$DEVICE" "${SIZE[@]}" --keyframes "$KS" \
    --repeats "$REPEATS" --json "$OUT/bench_onnx_cuda.json" | tee "$OUT/bench_onnx_cuda.txt"
fi
"$PY" -m superglue_ros bench-lightglue --device "$DEVICE" --frontends aliked \
  --keypoints "${SIZE[5]}" --size "${SIZE[3]}x${SIZE[1]}" \
  --keyframes "$([ "$QUICK" = 1 ] && echo 1 || echo 4)" --precisions fp16,bf16 \
  --repeats "$([ "$QUICK" = 1 ] && echo 1 || echo 10)" | tee "$OUT/bench_lightglue.txt"
