"""The default ImageNet release of each ``create_backbone`` name (``checkpoint='mmvit://<name>'``,
``pretrained=True``), from the ``Backbones`` list of each family's ``configs/<family>/metafile.yml``::

    Backbones:
      - Name: twins-svt-small
        Source: "the authors' ImageNet-1k weights in mmseg's key layout ..."
        Weights: 'https://download.openmmlab.com/.../alt_gvt_small_20220308-7e1c3695.pth'
        Check Hash: true             # optional: the file name ends in -<sha256 prefix>
        SHA256: '<hex>'              # optional: the expected digest (or a prefix of >= 8 digits)
        Alternatives: ['https://huggingface.co/timm/twins_svt_small.in1k/resolve/main/model.safetensors', ...]
      - Name: crossformer-small
        Weights (manual download): 'https://drive.google.com/...'   # no direct link published
"""
import functools
import os.path as osp
from dataclasses import dataclass
from typing import Dict, Optional

from .files import CheckpointError

SCHEME = 'mmvit://'
_PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


@dataclass(frozen=True)
class Release:
    """One ``Backbones`` entry of a metafile."""
    name: str
    source: str = ''
    url: Optional[str] = None  # direct download
    check_hash: bool = False
    sha256: Optional[str] = None
    page: Optional[str] = None  # manual-download page, when there is no direct link
    metafile: str = ''

    @property
    def location(self) -> str:
        return f'{SCHEME}{self.name}'


def model_index_path() -> str:
    """``model-index.yml``: under ``mmvit_backbones/.mim/`` when installed, else at the source tree's root."""
    for candidate in (osp.join(_PACKAGE_DIR, '.mim', 'model-index.yml'),
                      osp.join(osp.dirname(_PACKAGE_DIR), 'model-index.yml')):
        if osp.isfile(candidate):
            return candidate
    raise FileNotFoundError(f'model-index.yml not found in {osp.join(_PACKAGE_DIR, ".mim")} or '
                            f'{osp.dirname(_PACKAGE_DIR)}: the package was installed without its model zoo; '
                            f'reinstall it (pip install mmvit_backbones) or give the checkpoint as a path or URL')


def _release(entry: dict, metafile: str) -> Release:
    name = entry.get('Name')
    if not isinstance(name, str) or not name:
        raise ValueError(f'{metafile}: a Backbones entry has no Name: {entry}')
    url, page = entry.get('Weights'), entry.get('Weights (manual download)')
    if url is not None and not str(url).startswith(('https://', 'http://')):
        raise ValueError(f'{metafile}: Backbones entry {name!r} has Weights {url!r}; expected an http(s) URL')
    return Release(name=name.lower(), source=str(entry.get('Source', '')), url=url, page=page,
                   check_hash=bool(entry.get('Check Hash', False)), sha256=entry.get('SHA256'), metafile=metafile)


@functools.lru_cache(maxsize=1)
def releases() -> Dict[str, Release]:
    """``{name: Release}`` of every metafile listed by ``model-index.yml`` (read once)."""
    import yaml
    index_path = model_index_path()
    with open(index_path) as f:
        index = yaml.safe_load(f)
    found: Dict[str, Release] = {}
    for metafile in index.get('Import', []):
        with open(osp.join(osp.dirname(index_path), metafile)) as f:
            meta = yaml.safe_load(f) or {}
        for entry in meta.get('Backbones') or []:
            release = _release(entry, metafile)
            if release.name in found:
                raise ValueError(f'{metafile}: backbone {release.name!r} is listed twice (also in '
                                 f'{found[release.name].metafile})')
            found[release.name] = release
    return found


def get_release(name: str) -> Release:
    """The release of backbone ``name``; raises naming the names that have one."""
    key = name.strip().lower()
    known = releases()
    if key not in known:
        raise CheckpointError(f'backbone {name!r} has no default release in the model-zoo metafiles; names with '
                              f'one: {", ".join(sorted(n for n, r in known.items() if r.url))}')
    return known[key]


def direct_url(release: Release) -> str:
    """The release's download URL, or an error saying where to get the file by hand."""
    if release.url:
        return release.url
    page = f' from {release.page}' if release.page else ''
    raise CheckpointError(
        f'{release.location}: the authors publish no direct download of {release.name} ({release.source}); '
        f'download it by hand{page} and give its path instead (pretrained=PATH or '
        f"init_cfg=dict(type='Pretrained', checkpoint=PATH))")
