"""Bad and edge inputs over all six backbone types (issue 13 items 1-3 and 6): each case gets a clear
error naming the problem, or a correct result. Reduced-depth archs, small inputs.

What happens where (docs/reliability.md): wrong rank/channels/size/device -> ValueError; a non-float
input or a dtype other than the weights' (outside autocast) -> TypeError naming both dtypes; batch 0
-> empty outputs of the right shape, with autograd; NaN/Inf -> propagate (not checked per forward);
channels-last or strided inputs -> the same features as a contiguous copy; bf16/fp16 models -> finite
features close to float32's.
"""
import copy
import math
import re

import pytest
import torch
from mmengine.registry import MODELS

from mmvit_backbones.checkpoint import CheckpointError, load_pretrained

STRIDES = (4, 8, 16, 32)
TINY = {
    'GCViT': dict(arch=dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), mlp_ratio=2,
                            layer_scale=1e-5), window_size=7),  # depth 2: local and global blocks
    'TwinsPCPVT': dict(arch=dict(embed_dims=[8, 16, 24, 32], num_heads=[1, 2, 3, 4], mlp_ratios=[4, 4, 4, 4],
                                 depths=[1, 1, 1, 1], sr_ratios=[8, 4, 2, 1])),
    'TwinsSVT': dict(arch=dict(embed_dims=[8, 16, 24, 32], num_heads=[1, 2, 3, 4], mlp_ratios=[4, 4, 4, 4],
                               depths=[2, 2, 2, 2], sr_ratios=[8, 4, 2, 1])),  # depth 2: LSA and GSA
    'CrossFormer': dict(arch=dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8)),
                        group_size=(4, 4, 3, 3), interval=(4, 2, 2, 1)),
    'XCiT': dict(arch=dict(embed_dims=32, depth=4, num_heads=2, patch_size=16, tap_blocks=(0, 1, 2, 3))),
    'TransNeXt': dict(arch=dict(embed_dims=(16, 32, 48, 64), depths=(1, 1, 1, 1), num_heads=(1, 2, 3, 4)),
                      img_size=64),
}
TYPES = sorted(TINY)
SIZE = (64, 80)  # not square; 80 is not a multiple of the 7x7 windows (padding paths run)


def build(type_name, **overrides):
    torch.manual_seed(0)
    model = MODELS.build(dict(type=type_name, **TINY[type_name], **overrides))
    model.reset_parameters()  # the family's own init (init_weights would log every parameter)
    return model.eval()


@pytest.fixture(scope='module')
def models():
    return {name: build(name) for name in TYPES}


def image(b=2, size=SIZE, seed=1):
    return torch.randn(b, 3, *size, generator=torch.Generator().manual_seed(seed))


def expected_shapes(model, b, size):
    return [(b, model.out_channels[k], math.ceil(size[0] / STRIDES[i]), math.ceil(size[1] / STRIDES[i]))
            for k, i in enumerate(model.out_indices)]


def rel_err(out, ref):
    return ((out.float() - ref).norm() / ref.norm()).item()


# ------------------------------------------------------------------------------- clear errors
@pytest.mark.parametrize('type_name', TYPES)
def test_wrong_rank_channels_size_name_the_problem(type_name, models):
    model = models[type_name]
    for bad in (torch.randn(3, 64, 64), torch.randn(1, 1, 3, 64, 64)):
        message = f'expected an input of shape (B, 3, H, W), got {tuple(bad.shape)}'
        with pytest.raises(ValueError, match=re.escape(message)):
            model(bad)
    with pytest.raises(ValueError, match='got ndarray'):
        model(torch.randn(1, 3, 64, 64).numpy())
    with pytest.raises(ValueError, match='input has 1 channels, expected in_channels=3'):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match=r'input size \(16, 64\) is smaller than the minimum 32x32'):
        model(torch.randn(1, 3, 16, 64))


@pytest.mark.parametrize('type_name', TYPES)
def test_dtype_and_device_mismatch_named_before_any_layer(type_name, models):
    model = models[type_name]
    with pytest.raises(TypeError, match=r'torch.uint8 is not a floating type.*float32'):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    for dtype in (torch.float64, torch.float16, torch.bfloat16):
        with pytest.raises(TypeError, match=rf'input dtype {dtype} does not match the weights \(torch.float32\); '
                                            r'cast the input .* or run mixed precision under torch.autocast'):
            model(torch.zeros(1, 3, 64, 64, dtype=dtype))
    with pytest.raises(ValueError, match='input is on meta but the weights are on cpu'):
        model(torch.zeros(1, 3, 64, 64, device='meta'))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        with pytest.raises(TypeError, match='autocast does not cast float64 down'):
            model(torch.zeros(1, 3, 64, 64, dtype=torch.float64))


@pytest.mark.parametrize('type_name', TYPES)
def test_argument_errors_name_the_value(type_name):
    spec = dict(type=type_name, **TINY[type_name])
    cases = [
        (dict(arch='no-such-arch'), "unknown arch 'no-such-arch'"),
        (dict(out_indices=(0, 7)), r'out_indices \(0, 7\) out of range for 4 stages'),
        (dict(out_indices=(1, 1)), 'duplicates'),
        (dict(frozen_stages=9), r'frozen_stages 9 out of range; expected an int in \[-1, 4\]'),
        (dict(drop_path_rate=1.5), r'drop_path_rate must be in \[0, 1\), got 1.5'),
        (dict(in_channels=0), 'in_channels must be a positive int, got 0'),
    ]
    for override, message in cases:
        with pytest.raises(ValueError, match=message):
            MODELS.build({**spec, **override})


@pytest.mark.parametrize('type_name', TYPES)
def test_checkpoint_errors(type_name, tmp_path, models):
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CheckpointError, match=rf"checkpoint '{corrupt}' is not a PyTorch checkpoint"):
        load_pretrained(build(type_name), str(corrupt))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_pretrained(build(type_name), str(tmp_path / 'missing.pth'))
    other = TYPES[(TYPES.index(type_name) + 2) % len(TYPES)]  # +2: never the other Twins
    wrong = tmp_path / f'{other}.pth'
    torch.save(models[other].state_dict(), wrong)
    with pytest.raises(CheckpointError, match=rf'is not a {models[type_name].family} checkpoint: it looks like a '
                                              rf'{models[other].family} checkpoint'):
        load_pretrained(build(type_name), str(wrong))


# ------------------------------------------------------------------------------ correct results
@pytest.mark.parametrize('type_name', TYPES)
def test_batch_zero_gives_empty_outputs_and_gradients(type_name):
    model = build(type_name).train()
    x = torch.randn(0, 3, *SIZE, requires_grad=True)
    outs = model(x)
    assert [tuple(o.shape) for o in outs] == expected_shapes(model, 0, SIZE)
    assert all(o.dtype == torch.float32 and o.requires_grad for o in outs)
    sum(o.sum() for o in outs).backward()
    assert x.grad is not None and x.grad.shape == x.shape
    with torch.no_grad():
        assert [tuple(o.shape) for o in model.eval()(x)] == expected_shapes(model, 0, SIZE)


@pytest.mark.parametrize('type_name', TYPES)
def test_layout_of_the_input_does_not_change_the_features(type_name, models):
    model, x = models[type_name], image(b=1)
    big = torch.randn(2, 5, SIZE[0] + 7, SIZE[1] + 9)
    big[1:, 1:4, 3:3 + SIZE[0], 4:4 + SIZE[1]] = x
    strided = big[1:, 1:4, 3:3 + SIZE[0], 4:4 + SIZE[1]]  # a view: non-contiguous strides
    transposed = x.transpose(2, 3).contiguous().transpose(2, 3)  # (H, W) strides swapped
    with torch.no_grad():
        ref = model(x)
        for variant in (x.contiguous(memory_format=torch.channels_last), strided, transposed):
            assert not variant.is_contiguous()
            for out, r in zip(model(variant), ref):
                torch.testing.assert_close(out, r, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('type_name', TYPES)
def test_nan_and_inf_propagate(type_name, models):
    """Non-finite inputs are not checked per forward (that costs a device sync); they propagate."""
    model, x = models[type_name], image()
    with torch.no_grad():
        clean = model(x[1:])
        for value in (float('nan'), float('inf')):
            bad = x.clone()
            bad[0, 0, 10, 10] = value
            outs = model(bad)
            assert not all(torch.isfinite(o[0]).all() for o in outs)
            for o, c in zip(outs, clean):  # the other image of the batch is not touched
                torch.testing.assert_close(o[1:], c, rtol=1e-4, atol=1e-5)


# tolerances: relative L2 error of the features against float32 (measured: bf16 <= 0.016, fp16 <= 0.004)
LOW_PRECISION = {torch.bfloat16: 0.05, torch.float16: 0.015}


def cpu_supports_fp16_conv() -> bool:
    """torch 2.1's CPU kernels have no float16 convolution ("slow_conv2d_cpu" not implemented for 'Half')."""
    try:
        torch.nn.functional.conv2d(torch.ones(1, 1, 3, 3, dtype=torch.float16), torch.ones(1, 1, 2, 2, dtype=torch.float16))
        return True
    except RuntimeError:
        return False


@pytest.mark.parametrize('dtype', list(LOW_PRECISION), ids=str)
@pytest.mark.parametrize('type_name', TYPES)
def test_half_precision_models(type_name, dtype, models):
    if dtype == torch.float16 and not cpu_supports_fp16_conv():
        pytest.skip(f'torch {torch.__version__} has no float16 convolution on the CPU (a torch limitation; '
                    'float16 models on CUDA are measured by tools/gpu_check.py)')
    model, x = copy.deepcopy(models[type_name]), image(b=1)
    with torch.no_grad():
        ref = model(x)
        outs = model.to(dtype)(x.to(dtype))
    for out, r in zip(outs, ref):
        assert out.dtype == dtype and out.shape == r.shape
        assert torch.isfinite(out).all()
        assert rel_err(out, r) < LOW_PRECISION[dtype], rel_err(out, r)


@pytest.mark.parametrize('type_name', TYPES)
def test_autocast_bf16(type_name, models):
    model, x = models[type_name], image(b=1)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            outs = model(x)
            assert all(o.shape == r.shape for o, r in zip(model(x.bfloat16()), ref))  # bf16 input: cast too
    for out, r in zip(outs, ref):
        assert out.dtype in (torch.bfloat16, torch.float32)
        assert torch.isfinite(out).all()
        assert rel_err(out, r) < LOW_PRECISION[torch.bfloat16], rel_err(out, r)
