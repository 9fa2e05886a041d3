#!/usr/bin/env bash
# Distributed training with PyTorch's DDP through torchrun (gloo on CPU-only machines, NCCL on GPUs).
usage() {
    cat <<'USAGE'
usage: bash tools/dist_train.sh CONFIG NPROCS [train.py args...]
  Runs NPROCS training processes on this machine with torchrun (tools/train.py --launcher pytorch).
  Environment: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR (127.0.0.1),
               PYTHON (the repository's .venv/bin/python when it exists, else python).
  e.g. bash tools/dist_train.sh configs/transnext/dino_coco.py 8 --work-dir work_dirs/dino_transnext
USAGE
}
set -euo pipefail
case "${1:-}" in -h | --help) usage; exit 0 ;; esac
if [ $# -lt 2 ]; then usage >&2; exit 2; fi
CONFIG=$1
NPROCS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)  # relative config/data paths stay relative to the caller's cwd
if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON=${PYTHON:-$ROOT/.venv/bin/python}; else PYTHON=${PYTHON:-python}; fi
PYTHONPATH="$ROOT:${PYTHONPATH:-}" exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" --master_port="$PORT" \
    --nproc_per_node="$NPROCS" "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "${@:3}"
