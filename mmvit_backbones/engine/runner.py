"""``MMViTRunner``: mmengine's ``Runner`` whose ``load_checkpoint`` reads the authors' whole models.

``tools/train.py`` and ``tools/test.py`` use it (or a config's ``runner_type='MMViTRunner'``): ``load_from=``, the
test checkpoint and ``--resume`` go through :mod:`mmvit_backbones.checkpoint` (any location mmengine reads,
weights-only unpickling, the backbone's key conversion and family check, a load report in the log). Unless the
config sets ``allow_partial_load=True`` (``tools/train.py`` does by default, for new heads), a checkpoint that
leaves model tensors unloaded or of another shape raises, listing them.
"""
from typing import Callable, Union

from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ..checkpoint.loader import read_checkpoint
from ..checkpoint.whole_model import apply_whole_state_dict, convert_whole_model


@RUNNERS.register_module()
class MMViTRunner(Runner):
    """A :class:`~mmengine.runner.Runner` whose checkpoint loading converts the authors' models first."""

    allow_partial_load: bool = False

    @classmethod
    def from_cfg(cls, cfg) -> 'MMViTRunner':
        runner = super().from_cfg(cfg)
        runner.allow_partial_load = bool(cfg.get('allow_partial_load', False))
        return runner

    def load_checkpoint(self,
                        filename: str,
                        map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False,
                        revise_keys: list = [(r'^module\.', '')]):  # noqa: B006 - mmengine's signature
        """Read, convert (backbone keys, head renames) and load; strict unless ``allow_partial_load``."""
        model = self.model.module if is_model_wrapper(self.model) else self.model
        if isinstance(model, BaseTTAModel):  # --tta: the checkpoint is the wrapped model's
            model = model.module
        checkpoint = read_checkpoint(filename, map_location)
        state_dict, info = convert_whole_model(checkpoint, model, filename, revise_keys)
        checkpoint['state_dict'] = state_dict  # hooks (EMAHook) see the converted keys
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        apply_whole_state_dict(model, checkpoint['state_dict'], filename, info,
                               strict=strict or not self.allow_partial_load)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint
