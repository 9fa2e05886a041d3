#!/usr/bin/env bash
# Installs mmvit-backbones and one pinned OpenMMLab stack (a "lane") into a virtual environment.
#
#   bash tools/install.sh                  # lane cpu:     ./.venv,         torch 2.13.0 (CPU), numpy 2
#   LANE=torch21 bash tools/install.sh     # lane torch21: ./.venv-torch21, torch 2.1.2, numpy 1.x (the GPU users' stack)
#
# Both lanes: CPython 3.11, mmengine 0.10.7, mmcv 2.1.0 with compiled ops, mmdet 3.3.0, mmsegmentation 1.2.2
# (exact pins: requirements/<lane>-pins.txt; setup.py itself states only ranges). VENV=path overrides the venv.
# mmcv 2.1.0 has no registry wheel for either torch, so the script takes one built against the lane's torch from
# a wheelhouse (MMCV_WHEELHOUSE; default ../shared/wheelhouse for cpu, ../shared/wheelhouse/torch2.1 for torch21)
# when there is one and otherwise builds it from source (about 16 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

LANE=${LANE:-cpu}
case "$LANE" in
  cpu) DEFAULT_VENV=.venv; TORCH_SPEC='torch==2.13.0'; NUMPY_SPEC='numpy'; DEFAULT_WHEELHOUSE=../shared/wheelhouse ;;
  torch21) DEFAULT_VENV=.venv-torch21; TORCH_SPEC='torch==2.1.2'; NUMPY_SPEC='numpy<2'
           DEFAULT_WHEELHOUSE=../shared/wheelhouse/torch2.1 ;;
  *) echo "[install] unknown LANE=$LANE; expected cpu or torch21" >&2; exit 2 ;;
esac
PINS=requirements/$LANE-pins.txt
VENV=${VENV:-$DEFAULT_VENV}
PYTHON=${PYTHON:-python3}
WHEELHOUSE=${MMCV_WHEELHOUSE:-$DEFAULT_WHEELHOUSE}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check)

# setuptools: torch 2.13 needs >= 77.0.3; mmcv's setup.py and mmengine's `mmdet::`/`mmseg::` config
# lookup import pkg_resources, which setuptools 81 removed.
"${PIP[@]}" -q 'pip>=23' 'setuptools>=77.0.3,<81' wheel
"${PIP[@]}" -q "$TORCH_SPEC" "$NUMPY_SPEC" -c "$PINS"

# An mmcv built against another torch imports but its ops fail to load (undefined symbols): the check imports them.
if ! "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'; from mmcv.ops import nms" 2>/dev/null; then
  if [ -d "$WHEELHOUSE" ] && ls "$WHEELHOUSE"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
    echo "[install] mmcv 2.1.0 from wheelhouse $WHEELHOUSE"
    "${PIP[@]}" -q --force-reinstall --find-links "$WHEELHOUSE" --no-index --no-deps mmcv==2.1.0
  else
    echo "[install] no mmcv wheel found in $WHEELHOUSE: building mmcv 2.1.0 with ops from source (~16 min)"
    "${PIP[@]}" -q 'mmengine==0.10.7' addict yapf packaging Pillow pyyaml "$NUMPY_SPEC" opencv-python-headless ninja \
      psutil -c "$PINS"
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "${PIP[@]}" --force-reinstall --no-deps --no-build-isolation --no-binary mmcv \
      mmcv==2.1.0
  fi
fi

# Run-time, tests and export (onnx, onnxruntime) requirements, held to the lane's pins.
"${PIP[@]}" -q -r requirements.txt -c "$PINS"
# Editable install; setup.py links configs/, tools/ and model-index.yml into mmvit_backbones/.mim/.
"${PIP[@]}" -q --no-build-isolation --no-deps -e .

# One-line check that mmcv's compiled ops import (they are what mmdet's RoIAlign/NMS run on).
"$PY" -c "import mmcv, mmcv.ops, torch; from mmcv.ops import nms, RoIAlign; import numpy; print('[install] ok ($LANE lane): torch', torch.__version__, '| numpy', numpy.__version__, '| mmcv', mmcv.__version__, 'with ops')"
