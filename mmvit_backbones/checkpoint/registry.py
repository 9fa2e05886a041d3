"""One key converter per family: official (ImageNet or dense) state dict -> this package's keys."""
import re
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Pattern, Sequence, Tuple, Union

import torch
from torch import nn

StateDict = Dict[str, torch.Tensor]

# Top-level keys of an ImageNet classifier that no dense backbone has: they are reported and ignored.
CLASSIFIER_KEYS = re.compile(r'^(head|head_dist|fc_norm|norm|pre_logits|cls_token|dist_token)(\.|$)')


def is_classifier_key(key: str, model: Optional[nn.Module] = None) -> bool:
    """The default ``allow_unexpected``: the classifier head and the final norm before it."""
    return CLASSIFIER_KEYS.match(key) is not None


def rename_key(key: str, rules: Sequence[Tuple[Pattern, Union[str, Callable]]]) -> str:
    """``key`` renamed by the first rule ``(pattern, re.sub replacement)`` whose pattern matches it."""
    for pattern, repl in rules:
        new, count = pattern.subn(repl, key, count=1)
        if count:
            return new
    return key


@dataclass
class Converter:
    """How to bring a family's checkpoints (official or ours) to this package's parameter names and shapes."""
    convert: Callable[[StateDict, nn.Module], StateDict]  # (state_dict, model) -> ours; our keys pass through
    detect: Callable[[StateDict], bool]  # whether the keys look like this family
    # our parameters a valid checkpoint may lack, left at their initialisation (a dense backbone's output norms)
    allow_missing: Callable[[str], bool]
    allow_unexpected: Callable[[str, nn.Module], bool] = is_classifier_key  # (key, model): converted keys not used


CONVERTERS: Dict[str, Converter] = {}


def register_converter(family: str, detect: Callable[[StateDict], bool],
                       allow_missing: Optional[Callable[[str], bool]] = None,
                       allow_unexpected: Optional[Callable[[str, nn.Module], bool]] = None):
    """Decorator registering ``convert(state_dict, model)`` as the converter of ``family``."""

    def wrap(convert: Callable[[StateDict, nn.Module], StateDict]):
        if family in CONVERTERS:
            raise KeyError(f'a checkpoint converter for family {family!r} is already registered')
        CONVERTERS[family] = Converter(convert, detect, allow_missing or (lambda key: False),
                                       allow_unexpected or is_classifier_key)
        return convert

    return wrap


def get_converter(family: str) -> Converter:
    if family not in CONVERTERS:
        raise KeyError(f'no checkpoint converter for family {family!r}; known: {sorted(CONVERTERS)}')
    return CONVERTERS[family]
