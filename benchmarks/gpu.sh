#!/usr/bin/env bash
# One command measures the GPU: throughput of every loop (segexp, plain, plain+workers,
# Lightning) for smp_unet ResNet-34, unet, deeplabv3 and segformer at 512x512 batch 16 with
# aug none and strong, the cost of each speed switch turned off, and the host syncs per step.
# Everything lands under $OUT (default: benchmarks/results/gpu-<date>); about 9 minutes on one
# H100 (benchmarks/gpu_suite.py keeps to a budget and records what it skipped).
#
#   bash benchmarks/gpu.sh                 # on the GPU machine, from the repository root
#   OUT=/tmp/gpu bash benchmarks/gpu.sh --tiny   # the same stages, tiny, on a CPU (the tests')
#
# A CUDA machine with PyTorch but without segexp's other dependencies: first, on a machine with
# the package index, `bash ../shared/tools/gpu-wheels.sh` fills ./.whl (git-ignored; copy it
# along). For the Lightning row add its pure-Python wheels:
#   python3 -m pip download -q --no-deps -d .whl lightning==2.6.6 pytorch-lightning==2.6.6 \
#       lightning-utilities==0.15.3 torchmetrics==1.9.0
# This script installs ./.whl into /tmp/site when hydra, albumentations or smp are missing.
#
# In the Docker image (Dockerfile; torch 2.14.1 as in `make test`, lightning included):
#   docker build -t segexp . && docker run --gpus all --shm-size=16g \
#       -v $PWD/outputs:/workspace/segexp/outputs -e OUT=/workspace/segexp/outputs/gpu-bench \
#       segexp bash benchmarks/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUT=${OUT:-benchmarks/results/gpu-$(date -u +%Y%m%dT%H%M%S)}
mkdir -p "$OUT"
if ! "$PYTHON" -c "import hydra, albumentations, segmentation_models_pytorch" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "hydra-core, albumentations or segmentation-models-pytorch is missing and there is no" \
         "./.whl: run ../shared/tools/gpu-wheels.sh on a machine with the package index" >&2
    exit 1
  fi
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
{
  date -u
  nvidia-smi 2>/dev/null || echo "no nvidia-smi"
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  nproc; free -g 2>/dev/null || true
} > "$OUT/environment.txt" 2>&1
"$PYTHON" benchmarks/gpu_suite.py --out "$OUT" "$@" 2>&1 | tee "$OUT/log.txt"
echo "results under $OUT"
