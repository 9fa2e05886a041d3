"""Checkpoint loading with key conversion: one converter module per family, one loader for all."""
from . import crossformer, gcvit, transnext, twins, xcit  # noqa: F401  (register the converters)
from .loader import (CheckpointError, LoadReport, apply_state_dict, check_family, convert_file,
                     convert_state_dict, extract_state_dict, load_pretrained, read_checkpoint)
from .registry import CONVERTERS, Converter, get_converter, register_converter

__all__ = [
    'CONVERTERS', 'CheckpointError', 'Converter', 'LoadReport', 'apply_state_dict', 'check_family', 'convert_file',
    'convert_state_dict',
    'extract_state_dict', 'get_converter', 'load_pretrained', 'read_checkpoint', 'register_converter'
]
