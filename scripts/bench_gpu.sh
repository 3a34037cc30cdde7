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
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench-gpu}
PY=${PYTHON:-python3}
mkdir -p "$OUT"

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

"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'bench_gpu: torch sees no CUDA GPU')"
nvidia-smi > "$OUT/gpu.txt" 2>&1 || echo "nvidia-smi not available" > "$OUT/gpu.txt"
# onnxruntime is timed on the GPU only where this build has a GPU provider.
runtimes=$("$PY" -c "
import onnxruntime as ort
gpu = {'CUDAExecutionProvider', 'TensorrtExecutionProvider'} & set(ort.get_available_providers())
print('torch,onnxruntime' if gpu else 'torch')" 2>/dev/null || echo torch)
echo "bench_gpu: runtimes $runtimes" | tee "$OUT/bench_cuda.txt"
"$PY" -m superglue_ros bench --device cuda --height 480 --width 640 --keypoints 1024 \
  --keyframes 1,4,8 --precisions fp32,fp16,bf16 --runtime "$runtimes" --repeats 30 --warmup 5 \
  --json "$OUT/bench_cuda.json" | tee -a "$OUT/bench_cuda.txt"
