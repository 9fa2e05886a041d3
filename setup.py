"""Build script for mmvit-backbones (`pip install -e .`; see tools/install.sh for the pinned stack)."""
import os.path as osp

from setuptools import find_packages, setup


def read_version() -> str:
    namespace: dict = {}
    with open(osp.join(osp.dirname(__file__), 'mmvit_backbones', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def read_requirements() -> list:
    with open(osp.join(osp.dirname(__file__), 'requirements.txt')) as f:
        lines = [line.split('#')[0].strip() for line in f]
    return [line for line in lines if line and line != 'pytest']


setup(
    name='mmvit_backbones',
    version=read_version(),
    description='GCViT, Twins, CrossFormer, XCiT and TransNeXt as OpenMMLab 2.x dense-prediction backbones',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmvit_backbones', 'mmvit_backbones.*']),
    python_requires='>=3.8',
    install_requires=read_requirements(),
    extras_require={'tests': ['pytest']},
    license='Apache License 2.0',
)
