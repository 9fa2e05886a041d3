#!/usr/bin/env bash
# Installs mmvit-backbones and its pinned OpenMMLab stack into a virtual environment.
#
#   bash tools/install.sh            # creates/updates ./.venv (override with VENV=path)
#
# The lane pinned here (requirements/cpu-pins.txt): CPython 3.11, torch 2.13.0 (CPU), mmengine 0.10.7,
# mmcv 2.1.0 with compiled ops, mmdet 3.3.0, mmsegmentation 1.2.2; setup.py itself states only ranges.
# mmcv 2.1.0 has no wheel for torch 2.13, so the script takes one from a wheelhouse (MMCV_WHEELHOUSE,
# default ../shared/wheelhouse) when there is one and otherwise builds it from source (about 16 minutes
# on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
WHEELHOUSE=${MMCV_WHEELHOUSE:-../shared/wheelhouse}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check)

# setuptools: torch 2.13 needs >= 77.0.3; mmcv's setup.py and mmengine's `mmdet::`/`mmseg::` config
# lookup import pkg_resources, which setuptools 81 removed.
"${PIP[@]}" -q 'pip>=23' 'setuptools>=77.0.3,<81' wheel
"${PIP[@]}" -q torch==2.13.0

if ! "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
  if [ -d "$WHEELHOUSE" ] && ls "$WHEELHOUSE"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
    echo "[install] mmcv 2.1.0 from wheelhouse $WHEELHOUSE"
    "${PIP[@]}" -q --find-links "$WHEELHOUSE" --no-index --no-deps mmcv==2.1.0
  else
    echo "[install] no mmcv wheel found in $WHEELHOUSE: building mmcv 2.1.0 with ops from source (~16 min)"
    "${PIP[@]}" -q 'mmengine==0.10.7' addict yapf packaging Pillow pyyaml 'numpy' opencv-python-headless ninja psutil
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "${PIP[@]}" --no-build-isolation --no-binary mmcv mmcv==2.1.0
  fi
fi

# Run-time, tests and export (onnx, onnxruntime) requirements, held to the lane's pins.
"${PIP[@]}" -q -r requirements.txt -c requirements/cpu-pins.txt
# Editable install; setup.py links configs/, tools/ and model-index.yml into mmvit_backbones/.mim/.
"${PIP[@]}" -q --no-build-isolation --no-deps -e .

# One-line check that mmcv's compiled ops import (they are what mmdet's RoIAlign/NMS run on).
"$PY" -c "import mmcv, mmcv.ops, torch; from mmcv.ops import nms, RoIAlign; print('[install] ok: torch', torch.__version__, '| mmcv', mmcv.__version__, 'with ops')"
