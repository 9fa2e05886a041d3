"""Build script for mmvit-backbones.

    pip install .              # a wheel: configs, tools and model-index.yml copied into mmvit_backbones/.mim/
    pip install -e .           # editable: mmvit_backbones/.mim/ holds symlinks to the repository's files
    bash tools/install.sh      # the pinned CPU lane (torch 2.13, mmcv 2.1.0 with ops) plus `pip install -e .`

Like mmdet/mmseg (their ``add_mim_extension``), the package carries its configs under ``.mim/``, which is where
mmengine looks for ``mmvit_backbones::<family>/<config>.py`` and where ``mim`` finds configs and tools.
"""
import os
import os.path as osp
import platform
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.develop import develop

ROOT = osp.dirname(osp.abspath(__file__))
PACKAGE = 'mmvit_backbones'
# What mim/mmengine expect under <package>/.mim/ (model-index.yml points at configs/<family>/metafile.yml).
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def read_version() -> str:
    namespace: dict = {}
    with open(osp.join(ROOT, PACKAGE, 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def read_requirements(name: str) -> list:
    """Requirement lines of ``requirements/<name>.txt``, without comments and ``-r`` includes."""
    with open(osp.join(ROOT, 'requirements', f'{name}.txt')) as f:
        lines = [line.split('#')[0].strip() for line in f]
    return [line for line in lines if line and not line.startswith('-')]


def read_readme() -> str:
    path = osp.join(ROOT, 'README.md')
    if not osp.exists(path):
        return ''
    with open(path, encoding='utf-8') as f:
        return f.read()


def _remove(path: str) -> None:
    if osp.islink(path) or osp.isfile(path):
        os.remove(path)
    elif osp.isdir(path):
        shutil.rmtree(path)


def _ignore_caches(directory, names):
    return [n for n in names if n == '__pycache__' or n.endswith('.pyc')]


def populate_mim_dir(mim_dir: str, mode: str) -> None:
    """Put ``MIM_FILES`` into ``mim_dir``: ``'symlink'`` (editable install) or ``'copy'`` (wheel)."""
    if mode not in ('symlink', 'copy'):
        raise ValueError(f"mode {mode!r}: expected 'symlink' or 'copy'")
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        src = osp.join(ROOT, name)
        if not osp.exists(src):
            raise FileNotFoundError(f'{src} is missing: the package data under {PACKAGE}/.mim/ is made from it')
        dst = osp.join(mim_dir, name)
        _remove(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_dir), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst, ignore=_ignore_caches)
        else:
            shutil.copyfile(src, dst)


class BuildPyWithMim(build_py):
    """``build_py`` that also puts the configs, tools and model index into the built package's ``.mim/``.

    A wheel (or sdist -> wheel) gets copies in the build directory, so the source tree is left alone; a
    PEP 660 editable install (setuptools >= 64 runs this command with ``editable_mode``) imports the source
    tree, so ``.mim/`` there gets symlinks and follows edits of ``configs/`` without reinstalling.
    """

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            link_mim_dir()
        else:
            populate_mim_dir(osp.join(self.build_lib, PACKAGE, '.mim'), 'copy')


class DevelopWithMim(develop):
    """``setup.py develop`` (the editable install of setuptools < 64): symlinks, as for PEP 660."""

    def run(self):
        super().run()
        link_mim_dir()


def link_mim_dir() -> None:
    # Windows needs privileges for symlinks; copy there (then re-run `pip install -e .` after editing configs).
    mode = 'copy' if platform.system() == 'Windows' else 'symlink'
    populate_mim_dir(osp.join(ROOT, PACKAGE, '.mim'), mode)


setup(
    name=PACKAGE,
    version=read_version(),
    description='GCViT, Twins, CrossFormer, XCiT and TransNeXt as OpenMMLab 2.x dense-prediction backbones',
    long_description=read_readme(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=[PACKAGE, f'{PACKAGE}.*']),
    python_requires='>=3.8',
    install_requires=read_requirements('runtime'),
    extras_require={'tests': read_requirements('tests'), 'export': read_requirements('export')},
    cmdclass={'build_py': BuildPyWithMim, 'develop': DevelopWithMim},
    zip_safe=False,
    license='Apache License 2.0',
)
