#!/usr/bin/env bash
# Device smoke check (issue 9 §3): one READ job end to end — precompute, train, evaluate, predict — on Read:Device,
# printing the device, precompute tokens/s, seconds per epoch and peak GPU memory (bench verb `gpu-check`).
#
#   scripts/gpu-check.sh                      # this checkout, CPU libtorch: prints "device cpu" (what runs here)
#   READ_NO_BUILD=1 scripts/gpu-check.sh     # the bench as already built
#   READ_TORCH_BACKEND=cuda scripts/gpu-check.sh --device cuda --require-cuda
#                                             # this checkout built against libtorch-cuda (needs the CUDA packages)
#   READ_GPU_IMAGE=read-worker-gpu scripts/gpu-check.sh --require-cuda
#                                             # inside the Dockerfile.gpu image, all GPUs visible (its entrypoint is
#                                             # the worker, so the bench is started with --entrypoint dotnet)
#   scripts/gpu-check.sh --dry-run ...        # print the command it would run, run nothing
#   scripts/gpu-check.sh --help               # this text
#
# Extra arguments go to the verb: --device auto|cpu|cuda|cuda:N, --backbone tiny-bert|all-minilm-l6-v2,
# --examples N, --epochs N, --require-cuda (exit 2 unless the job ran on CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  -h | --help)
    sed -n '2,/^set -euo pipefail$/p' "$0" | sed '$d' | sed -E 's/^# ?//'
    exit 0
    ;;
esac
dry_run=""
if [[ "${1:-}" == "--dry-run" ]]; then
  dry_run=1
  shift
fi

# The bench samples nvidia-smi's memory.used of the GPU behind cuda:N; in PCI bus order CUDA's ordinals are
# nvidia-smi's indices (CUDA's own default order is fastest first).
export CUDA_DEVICE_ORDER="${CUDA_DEVICE_ORDER:-PCI_BUS_ID}"

run() {
  if [[ -n "$dry_run" ]]; then
    printf '%q ' "$@"
    printf '\n'
    exit 0
  fi
  exec "$@"
}

if [[ -z "$dry_run" ]] && command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv
fi

if [[ -n "${READ_GPU_IMAGE:-}" ]]; then
  run docker run --rm --gpus all --entrypoint dotnet "$READ_GPU_IMAGE" /bench/read-bench.dll gpu-check "$@"
fi

backend="${READ_TORCH_BACKEND:-cpu}"
if [[ -n "${READ_NO_BUILD:-}" ]]; then # reuse the bench already built (with whatever backend it was built)
  run dotnet run -c Release --no-build --project bench/Read.Bench -- gpu-check "$@"
fi
run dotnet run -c Release --project bench/Read.Bench -p:ReadTorchBackend="$backend" -- gpu-check "$@"
