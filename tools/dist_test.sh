#!/usr/bin/env bash
# Distributed evaluation with torchrun (gloo on CPU-only machines).
usage() {
    cat <<'USAGE'
usage: bash tools/dist_test.sh CONFIG CHECKPOINT NPROCS [test.py args...]
  Evaluates CHECKPOINT with NPROCS processes on this machine with torchrun (tools/test.py --launcher pytorch).
  Environment: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR (127.0.0.1),
               PYTHON (the repository's .venv/bin/python when it exists, else python).
  e.g. bash tools/dist_test.sh configs/transnext/dino_coco.py work_dirs/dino_transnext/epoch_12.pth 8
USAGE
}
set -euo pipefail
case "${1:-}" in -h | --help) usage; exit 0 ;; esac
if [ $# -lt 3 ]; then usage >&2; exit 2; fi
CONFIG=$1
CHECKPOINT=$2
NPROCS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)  # relative config/data paths stay relative to the caller's cwd
if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON=${PYTHON:-$ROOT/.venv/bin/python}; else PYTHON=${PYTHON:-python}; fi
PYTHONPATH="$ROOT:${PYTHONPATH:-}" exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" --master_port="$PORT" \
    --nproc_per_node="$NPROCS" "$ROOT/tools/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
