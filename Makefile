# Two fresh-machine entry points (see README): `make demo` (the main job on the embedded dataset) and `make test`.
# `make test-torch21` runs the suite on the GPU users' stack (torch 2.1.2, numpy 1.x); `.ci/run` runs both lanes.
PY ?= .venv/bin/python
PY21 ?= .venv-torch21/bin/python
PYTEST_ARGS ?= -q --durations=15

.PHONY: install install-torch21 demo demo-data test test-torch21 benchmark gpu-check

install:
	bash tools/install.sh

install-torch21:
	LANE=torch21 bash tools/install.sh

demo-data:
	$(PY) tools/make_demo_data.py data/demo

# The headline family on the embedded data (docs/demo.md): a small TransNeXt UperNet (mIoU), then DINO whose backbone
# starts from the UperNet checkpoint through init_cfg=Pretrained (backbone.-prefixed keys), then the summary:
# metrics beside their trivial baselines, curves, and where checkpoints, logs and pictures are. CPU, minutes.
DEMO_SEG ?= work_dirs/demo_upernet
DEMO_DET ?= work_dirs/demo_dino
demo: install demo-data
	$(PY) tools/train.py configs/demo/upernet_transnext_demo.py --work-dir $(DEMO_SEG)
	$(PY) tools/train.py configs/demo/dino_transnext_demo.py --work-dir $(DEMO_DET) --cfg-options \
		model.backbone.init_cfg.type=Pretrained model.backbone.init_cfg.checkpoint=$$(cat $(DEMO_SEG)/last_checkpoint)
	$(PY) tools/demo_summary.py --seg-work-dir $(DEMO_SEG) --det-work-dir $(DEMO_DET) --data-root data/demo

# XCiT's 35 configs each run a loss and a predict step (about 4 extra minutes on 2 cores).
test: install
	XCIT_ALL_CONFIG_STEPS=$${XCIT_ALL_CONFIG_STEPS:-1} $(PY) -m pytest tests $(PYTEST_ARGS)

# The second lane runs the same suite but the tests marked `lane_once` (pure-Python facts about configs, docs,
# metafiles and published tables that do not depend on torch; they run in `make test`). Tests that need a newer
# torch skip there, naming the version.
test-torch21: install-torch21
	$(PY21) -m pytest tests $(PYTEST_ARGS) -m "not lane_once"

benchmark: install
	$(PY) tools/benchmark.py --out benchmarks/benchmark.json

# The one-GPU check (docs/reliability.md#gpu-check), never run by CI: about 8 minutes on one CUDA GPU, writes
# benchmarks/gpu.json and benchmarks/gpu.md. It runs the active environment's python (the GPU lane: torch with CUDA,
# README's install table), not ./.venv (CPU torch); GPU_PY=path/to/python picks another.
GPU_PY ?= python
gpu-check:
	$(GPU_PY) tools/gpu_check.py --out benchmarks/gpu.json
