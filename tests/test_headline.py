"""The headline command, as a user runs it: tools/train.py on configs/transnext/dino_coco.py itself (full-size
TransNeXt-Tiny DINO 4-scale, its real pipeline and optimizer) through the user config that docs/demo.md shows for
training on one's own COCO-format data, pointed at the demo COCO set and shortened to 2 iterations."""
import math
import os
import os.path as osp
import re
import subprocess
import sys

import torch

from mmvit_backbones.demo import make_demo_data

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
HEADLINE = osp.join(ROOT, 'configs/transnext/dino_coco.py')
DOC = osp.join(ROOT, 'docs/demo.md')
DOC_HEADING = '## Train the headline on your own COCO-format data'

# Only what a test needs on top of the documented config: no download, small images, 2 iterations, a logged loss.
SHORTEN = '''
# ---- shortened for the test: no download, 224-256 px images, 2 images x 1 epoch = 2 iterations.
# (DINO picks its 900 queries among the encoder tokens, so an image needs >= 900 of them: >= ~210 px.)
model['backbone'] = dict(init_cfg=None)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoiceResize', scales=[(224, 373), (256, 427)], keep_ratio=True),
    dict(type='PackDetInputs'),
]
train_dataloader.update(num_workers=0, persistent_workers=False)
train_dataloader['dataset'].update(indices=2, pipeline=train_pipeline)
val_dataloader.update(num_workers=0, persistent_workers=False)
val_dataloader['dataset'].update(indices=2)
train_cfg = dict(max_epochs=1, val_interval=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, save_optimizer=False))
'''


def documented_user_config() -> str:
    """The first ```python block after DOC_HEADING in docs/demo.md."""
    text = open(DOC).read()
    assert DOC_HEADING in text, f'{DOC} lost its section {DOC_HEADING!r}'
    block = re.search(r'```python\n(.*?)```', text[text.index(DOC_HEADING):], re.S)
    assert block, f'no ```python block under {DOC_HEADING!r} in {DOC}'
    return block.group(1)


def test_headline_dino_transnext_tiny_trains_through_tools_train(tmp_path):
    data = make_demo_data(str(tmp_path / 'data'), num_train=4, num_val=2, seed=0)
    config = documented_user_config()
    config, n_base = re.subn(r"^_base_ = .*$", f'_base_ = {HEADLINE!r}', config, flags=re.M)
    config, n_root = re.subn(r"^data_root = .*$", f"data_root = {data['coco'] + '/'!r}", config, flags=re.M)
    assert n_base == 1 and n_root == 1, 'the documented config must set _base_ and data_root on one line each'
    user_cfg = tmp_path / 'my_dino_transnext.py'
    user_cfg.write_text(config + SHORTEN)
    work = tmp_path / 'work'
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '2'))
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools/train.py'), str(user_cfg), '--work-dir', str(work)],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    losses = [float(v) for v in re.findall(r'Epoch\(train\) +\[1\]\[ *\d+/2\].*? loss: ([-0-9.naif]+)', out)]
    assert len(losses) == 2 and all(math.isfinite(v) and v > 0 for v in losses), (losses, out[-3000:])
    ckpt = torch.load(str(work / 'epoch_1.pth'), map_location='cpu')
    state = ckpt['state_dict']
    # full-size TransNeXt-Tiny: 15 blocks in stage 3, 576 channels in stage 4; DINO's 900 queries; 3 classes
    assert 'backbone.block3.14.mlp.fc2.weight' in state and 'backbone.block3.15.mlp.fc2.weight' not in state
    assert state['backbone.norm4.weight'].shape == (576, )
    assert state['query_embedding.weight'].shape[0] == 900
    assert state['bbox_head.cls_branches.0.bias'].shape == (3, )
    assert ckpt['meta']['dataset_meta']['classes'] == ('circle', 'square', 'triangle')
