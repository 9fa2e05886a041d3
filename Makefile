# Two fresh-machine entry points (see README): `make demo` (the main job on the embedded dataset) and `make test`.
PY ?= .venv/bin/python
PYTEST_ARGS ?= -q --durations=15

.PHONY: install demo demo-data test benchmark

install:
	bash tools/install.sh

demo-data:
	$(PY) tools/make_demo_data.py data/demo

# Trains and evaluates a small Twins-SVT UperNet (mIoU), then a Mask R-CNN (COCO bbox/segm mAP) whose backbone
# starts from the UperNet checkpoint through init_cfg=Pretrained (backbone.-prefixed keys). CPU, minutes.
demo: install demo-data
	$(PY) tools/train.py configs/demo/upernet_twins_demo.py --work-dir work_dirs/demo_upernet
	$(PY) tools/train.py configs/demo/mask_rcnn_twins_demo.py --work-dir work_dirs/demo_mask_rcnn --cfg-options \
		model.backbone.init_cfg.type=Pretrained model.backbone.init_cfg.checkpoint=work_dirs/demo_upernet/iter_600.pth

# XCiT's 35 configs each run a loss and a predict step (about 4 extra minutes on 2 cores).
test: install
	XCIT_ALL_CONFIG_STEPS=$${XCIT_ALL_CONFIG_STEPS:-1} $(PY) -m pytest tests $(PYTEST_ARGS)

benchmark: install
	$(PY) tools/benchmark.py --out benchmarks/benchmark.json
