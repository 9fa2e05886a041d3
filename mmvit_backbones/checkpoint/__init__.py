"""Checkpoint loading with key conversion: one converter module per family, one loader for all. Nothing here
imports :mod:`mmvit_backbones.models` (converters receive the model), so the models may import this package."""
from . import crossformer, gcvit, transnext, twins, xcit  # noqa: F401  (register the converters)
from .files import (CheckpointDownloadError, CheckpointError, cache_dir, cached_path, download_to_cache,
                    file_sha256, read_checkpoint)
from .loader import (LoadReport, apply_state_dict, check_family, convert_file, convert_state_dict,
                     extract_state_dict, load_pretrained)
from .registry import CONVERTERS, Converter, get_converter, register_converter
from .whole_model import HEAD_RENAMES, convert_whole_model, load_whole_model
from .zoo import Release, get_release, releases

__all__ = [
    'CONVERTERS', 'CheckpointDownloadError', 'CheckpointError', 'Converter', 'HEAD_RENAMES', 'LoadReport',
    'Release', 'apply_state_dict', 'cache_dir', 'cached_path', 'check_family', 'convert_file',
    'convert_state_dict', 'convert_whole_model', 'download_to_cache', 'extract_state_dict', 'file_sha256',
    'get_converter', 'get_release', 'load_pretrained', 'load_whole_model', 'read_checkpoint', 'register_converter',
    'releases'
]
