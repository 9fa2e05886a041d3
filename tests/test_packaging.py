"""The package as users install it: a wheel with its configs under ``.mim/``, and the model-zoo metafiles.

``test_wheel_*`` build a wheel from a copy of the sources, install it non-editable into a fresh venv (with
this interpreter's site-packages visible, so torch and the mm* packages come from there) and, from a
directory outside the repository with the repository off ``sys.path``, resolve
``mmvit_backbones::transnext/dino_coco.py`` and build the model of a user config that inherits it.
"""
import ast
import glob
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile

import pytest
import yaml

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
FAMILIES = ('gcvit', 'twins', 'crossformer', 'xcit', 'transnext')
# Each family's defaults are one-line aliases of a variant config (checked below), so the metafiles list
# the variant only; files starting with '_' and configs/<family>/_base_/ are bases, not experiments.
DEFAULT_ALIASES = ('mask_rcnn_coco.py', 'dino_coco.py', 'upernet_ade20k.py')
# What a wheel build needs from the checkout (MANIFEST.in lists the same for an sdist).
SOURCES = ('setup.py', 'MANIFEST.in', 'README.md', 'model-index.yml', 'requirements.txt', 'requirements',
           'mmvit_backbones', 'configs', 'tools')


def run(cmd, **kwargs):
    """Run a command; on failure the assertion shows its output."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
    assert proc.returncode == 0, f'{cmd} exited {proc.returncode}:\n{proc.stdout[-6000:]}'
    return proc.stdout


@pytest.fixture(scope='module')
def source_copy(tmp_path_factory):
    """The files a build needs, copied: building in the checkout would leave build/ and egg-info there."""
    src = tmp_path_factory.mktemp('src')
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '.mim')
    for name in SOURCES:
        path = osp.join(ROOT, name)
        if osp.isdir(path):
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy(path, src / name)
    return src


@pytest.fixture(scope='module')
def wheel(source_copy, tmp_path_factory) -> str:
    src = source_copy
    dist = tmp_path_factory.mktemp('dist')
    run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '--no-index',
         '--disable-pip-version-check', '-q', '-w', str(dist), str(src)])
    wheels = glob.glob(str(dist / 'mmvit_backbones-*.whl'))
    assert len(wheels) == 1, wheels
    return wheels[0]


def make_venv(venv, *install_args) -> str:
    """A fresh venv with ``pip install --no-deps *install_args``; torch/mm* (and the build backend) come
    from this interpreter's site-packages."""
    run([sys.executable, '-m', 'venv', '--system-site-packages', '--without-pip', str(venv)])
    python = str(venv / 'bin' / 'python')
    # A venv made from a venv sees the base interpreter's site-packages, not this one's: add it by a path
    # line, which (unlike a site dir) runs none of its .pth files, so the checkout's editable hook stays out.
    purelib = run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])']).strip()
    with open(osp.join(purelib, 'ci-site-packages.pth'), 'w') as f:
        f.write(sysconfig.get_paths()['purelib'] + '\n')
    # --ignore-installed: the checkout's own (editable) install is visible too and must be left alone.
    run([sys.executable, '-m', 'pip', '--python', python, 'install', '--no-deps', '--no-index', '--ignore-installed',
         '--no-build-isolation', '--disable-pip-version-check', '-q', *install_args])
    return python


@pytest.fixture(scope='module')
def venv_python(wheel, tmp_path_factory) -> str:
    """A fresh venv holding the wheel, installed non-editable."""
    return make_venv(tmp_path_factory.mktemp('venv'), wheel)


def test_wheel_ships_configs_tools_and_model_index(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    mim = 'mmvit_backbones/.mim/'
    for family in FAMILIES:
        configs = glob.glob(osp.join(ROOT, 'configs', family, '**', '*.py'), recursive=True)
        missing = [p for p in configs if mim + osp.relpath(p, ROOT) not in names]
        assert not missing, f'{family} configs missing from the wheel: {missing[:5]}'
        assert f'{mim}configs/{family}/metafile.yml' in names
    for name in ('model-index.yml', 'configs/_base_/dino_4scale_12e_coco.py', 'tools/train.py', 'tools/test.py',
                 'tools/dist_train.sh'):
        assert mim + name in names, f'{mim + name} missing from the wheel'
    assert not [n for n in names if '__pycache__' in n or n.endswith('.pyc')]
    metadata = next(n for n in names if n.endswith('.dist-info/METADATA'))
    requires = [line for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
                if line.startswith('Requires-Dist:')]
    # Ranges that admit both lanes (torch 2.1 + official mmcv wheel, torch 2.13 + mmcv built here).
    torch_req = [r for r in requires if r.split()[1].startswith('torch')]
    assert torch_req and not any('==' in r for r in torch_req), torch_req
    assert any(r.startswith('Requires-Dist: mmcv') and '<2.2.0' in r for r in requires), requires
    assert any('onnxruntime' in r and 'extra == "export"' in r for r in requires), requires


def test_wheel_installed_resolves_package_configs_and_builds_model(venv_python, tmp_path):
    user_dir = tmp_path / 'user'  # outside the repository
    user_dir.mkdir()
    (user_dir / 'my_dino.py').write_text(textwrap.dedent("""\
        _base_ = ['mmvit_backbones::transnext/dino_coco.py']
        model = dict(backbone=dict(drop_path_rate=0.1))
        train_dataloader = dict(batch_size=1)
    """))
    script = user_dir / 'check.py'
    script.write_text(textwrap.dedent(f"""\
        import json, os, sys
        import mmvit_backbones
        from mmengine.config import Config
        from mmengine.hub import get_config
        from mmengine.registry import init_default_scope

        repo = {ROOT!r}
        here = os.path.dirname(os.path.abspath(mmvit_backbones.__file__))
        source = os.path.realpath(os.path.join(repo, 'mmvit_backbones'))
        on_path = [p for p in sys.path if os.path.realpath(os.path.join(p or '.', 'mmvit_backbones')) == source]
        packaged = get_config('mmvit_backbones::transnext/dino_coco.py')
        cfg = Config.fromfile('my_dino.py')
        init_default_scope(cfg.default_scope)
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules
        register_all_modules(init_default_scope=False)
        cfg.model.backbone.init_cfg = None  # no download here
        model = MODELS.build(cfg.model)
        print(json.dumps(dict(
            package=here, repo_on_path=on_path,
            packaged_file=packaged.filename, packaged_arch=packaged.model.backbone.arch,
            packaged_checkpoint=packaged.model.backbone.init_cfg.checkpoint,
            scopes=[cfg.model.get('_scope_'), cfg.optim_wrapper.get('_scope_')],
            drop_path=cfg.model.backbone.drop_path_rate, batch=cfg.train_dataloader.batch_size,
            model=type(model).__name__, backbone=type(model.backbone).__name__,
            params=sum(p.numel() for p in model.parameters()))))
    """))
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME', 'PYTHONSAFEPATH')}
    out = run([venv_python, '-I', str(script)], cwd=str(user_dir), env=env)
    result = json.loads(out.strip().splitlines()[-1])
    venv_root = osp.dirname(osp.dirname(venv_python))
    assert result['package'].startswith(venv_root), f"imported {result['package']}, not the installed wheel"
    assert not result['package'].startswith(ROOT)
    assert result['repo_on_path'] == [], result['repo_on_path']
    assert result['packaged_file'].startswith(osp.join(result['package'], '.mim', 'configs', 'transnext'))
    assert result['packaged_arch'] == 'tiny'
    assert result['packaged_checkpoint'].startswith('https://huggingface.co/DaiShiResearch/transnext-tiny-224-1k/')
    # A `mmvit_backbones::` base reads as a local file would: mmdet's scope where mmdet's bases set one and
    # none invented for our own dicts (mmengine would tag them with a `mmvit_backbones` registry scope).
    assert result['scopes'] == ['mmdet', None], result['scopes']
    assert (result['drop_path'], result['batch']) == (0.1, 1)
    assert (result['model'], result['backbone']) == ('DINO', 'TransNeXt')
    # The headline model: TransNeXt-T DINO 4-scale, 47.83M parameters (docs/transnext.md, the authors' 47.8M).
    assert abs(result['params'] / 1e6 - 47.83) < 0.01, result['params']


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def metafile_models():
    index = load_yaml(osp.join(ROOT, 'model-index.yml'))
    models = {}
    for meta in index['Import']:
        family = meta.split('/')[1]
        models[family] = load_yaml(osp.join(ROOT, meta))
    return index, models


def test_model_index_imports_one_metafile_per_family():
    index, models = metafile_models()
    assert index['Import'] == [f'configs/{f}/metafile.yml' for f in FAMILIES]
    assert sorted(glob.glob(osp.join(ROOT, 'configs', '*', 'metafile.yml'))) == sorted(
        osp.join(ROOT, p) for p in index['Import'])


@pytest.mark.parametrize('family', FAMILIES)
def test_metafile_matches_configs(family):
    meta = metafile_models()[1][family]
    collections = [c['Name'] for c in meta['Collections']]
    listed = set()
    for m in meta['Models']:
        cfg = m['Config']
        assert osp.isfile(osp.join(ROOT, cfg)), f"{m['Name']}: Config {cfg} does not exist"
        assert cfg.startswith(f'configs/{family}/') and m['Name'] == osp.basename(cfg)[:-3], m['Name']
        assert m['In Collection'] in collections, m['In Collection']
        md = m['Metadata']
        assert md['Training Data'] in ('COCO', 'ADE20K') and md['Parameters'].endswith('M'), m['Name']
        assert ('Epochs' in md) != ('Iterations' in md), f"{m['Name']}: give Epochs or Iterations"
        for result in m.get('Results', []):
            assert set(result) == {'Task', 'Dataset', 'Metrics'} and result['Metrics'], m['Name']
        assert m.get('Weights', 'https://').startswith('https://'), m['Name']
        assert cfg not in listed, f'{cfg} listed twice'
        listed.add(cfg)
    configs = {osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs', family, '*.py'))}
    experiments = {c for c in configs if not osp.basename(c).startswith('_')
                   and osp.basename(c) not in DEFAULT_ALIASES}
    assert experiments == listed, (f'configs missing from metafile: {sorted(experiments - listed)}; '
                                   f'metafile entries with no config: {sorted(listed - experiments)}')
    for alias in DEFAULT_ALIASES:
        base = _bases(osp.join(ROOT, 'configs', family, alias))
        assert len(base) == 1 and base[0].startswith('./'), f'{family}/{alias} should alias one variant: {base}'
        assert f'configs/{family}/{base[0][2:]}' in listed, f'{family}/{alias} aliases unlisted {base[0]}'


def _bases(path):
    for node in ast.parse(open(path).read()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', None) == '_base_':
            value = ast.literal_eval(node.value)
            return [value] if isinstance(value, str) else list(value)
    return []


def _checkpoint(path):
    """The init_cfg checkpoint a config names, following its local ``_base_`` files (read, not executed:
    parsing ~100 configs with mmengine takes minutes on a busy 2-core machine)."""
    text = open(path).read()
    found = re.search(r"^pretrained = '([^']+)'", text, re.M) or re.search(r"checkpoint='([^']+)'", text)
    if found:
        return found.group(1), text
    for base in _bases(path):
        if base.startswith('./'):
            checkpoint, base_text = _checkpoint(osp.join(osp.dirname(path), base))
            if checkpoint:
                return checkpoint, text + base_text
    return None, text


@pytest.mark.parametrize('family', FAMILIES)
def test_metafile_pretrained_is_what_the_config_loads(family):
    """Metadata.Pretrained names the file the config's init_cfg loads: its URL, or, for a file only
    published for manual download, the page that the config's comment also names."""
    for m in metafile_models()[1][family]['Models']:
        checkpoint, text = _checkpoint(osp.join(ROOT, m['Config']))
        pretrained = m['Metadata']['Pretrained']
        assert checkpoint, f"{m['Config']} names no init_cfg checkpoint"
        if checkpoint.startswith('https://'):
            assert checkpoint == pretrained, f"{m['Name']}: config loads {checkpoint}, metafile says {pretrained}"
        else:
            assert pretrained.startswith('manual download: https://'), m['Name']
            page = pretrained.split(': ', 1)[1]
            assert page in text, f"{m['Name']}: config does not name the download page {page}"


def test_editable_install_links_configs_and_resolves_them(source_copy, wheel, tmp_path):
    """`pip install -e .` (tools/install.sh): .mim/ holds symlinks into the checkout, so edited configs
    are seen without reinstalling, and `mmvit_backbones::` finds them although the distribution's
    location is site-packages (PEP 660)."""
    python = make_venv(tmp_path / 'venv', '-e', str(source_copy))
    mim = source_copy / 'mmvit_backbones' / '.mim'
    for name in ('configs', 'tools', 'model-index.yml'):
        assert osp.islink(mim / name) and osp.realpath(mim / name) == osp.realpath(source_copy / name), name
    (source_copy / 'configs' / 'transnext' / 'edited.py').write_text("_base_ = ['./dino_coco.py']\nedited = 1\n")
    user = tmp_path / 'user.py'
    user.write_text("_base_ = ['mmvit_backbones::transnext/edited.py']\n")
    code = ('import mmvit_backbones; from mmengine.config import Config; '
            f'c = Config.fromfile({str(user)!r}); print(mmvit_backbones.__file__, c.edited, c.model.backbone.arch)')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    out = run([python, '-I', '-c', code], cwd=str(tmp_path), env=env).strip().splitlines()[-1]
    assert out.split() == [str(source_copy / 'mmvit_backbones' / '__init__.py'), '1', 'tiny'], out
