#!/usr/bin/env bash
# Device smoke check (issue 9 §3): one READ job end to end — precompute, train, evaluate, predict — on Read:Device,
# printing the device, precompute tokens/s, seconds per epoch and peak GPU memory (bench verb `gpu-check`).
#
#   scripts/gpu-check.sh                      # this checkout, CPU libtorch: prints "device cpu" (what runs here)
#   READ_NO_BUILD=1 scripts/gpu-check.sh     # the bench as already built
#   READ_TORCH_BACKEND=cuda scripts/gpu-check.sh --device cuda --require-cuda
#                                             # this checkout built against libtorch-cuda (needs the CUDA packages)
#   READ_GPU_IMAGE=read-worker-gpu scripts/gpu-check.sh --require-cuda
#                                             # inside the Dockerfile.gpu image, all GPUs visible
#
# Extra arguments go to the verb: --device auto|cpu|cuda|cuda:N, --backbone tiny-bert|all-minilm-l6-v2,
# --examples N, --epochs N, --require-cuda (exit 2 unless the job ran on CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv
fi

if [[ -n "${READ_GPU_IMAGE:-}" ]]; then
  exec docker run --rm --gpus all "$READ_GPU_IMAGE" dotnet /bench/read-bench.dll gpu-check "$@"
fi

backend="${READ_TORCH_BACKEND:-cpu}"
if [[ -n "${READ_NO_BUILD:-}" ]]; then   # reuse the bench already built (with whatever backend it was built)
  exec dotnet run -c Release --no-build --project bench/Read.Bench -- gpu-check "$@"
fi
exec dotnet run -c Release --project bench/Read.Bench -p:ReadTorchBackend="$backend" -- gpu-check "$@"
