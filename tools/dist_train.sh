#!/usr/bin/env bash
# Distributed training with PyTorch's DDP through torchrun (gloo on CPU-only machines, NCCL on GPUs).
#   bash tools/dist_train.sh CONFIG NPROCS [train.py args...]
set -euo pipefail
CONFIG=$1
NPROCS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PYTHON=${PYTHON:-python}
ROOT=$(cd "$(dirname "$0")/.." && pwd)  # relative config/data paths stay relative to the caller's cwd
PYTHONPATH="$ROOT:${PYTHONPATH:-}" exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" --master_port="$PORT" \
    --nproc_per_node="$NPROCS" "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "${@:3}"
