"""The package's layering: code outside ``models/backbones/`` reads the backbone contract only, and the
subpackages import each other without a cycle at import time."""
import ast
import io
import os
import re
import tokenize

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, 'mmvit_backbones')
FAMILY_CLASSES = {'GCViT', 'TwinsPCPVT', 'TwinsSVT', 'TwinsBackbone', 'CrossFormer', 'XCiT', 'TransNeXt'}
# Where a family may be named: its own file, its checkpoint converter, the package's re-exports (CONTRACT:
# ``from mmvit_backbones import GCViT``) and TransNeXt's attention kernels.
FAMILY_PLACES = ('models/backbones/', 'checkpoint/', 'ops/', '__init__.py')
# Not yet rewritten on the contract (tracked in issue 21): remove an entry when its module is.
KNOWN = set()  # modules not yet on the contract (none left)
# a branch on a class name, or a probe for a family's attribute
PROBES = re.compile(r'(?:\)|__class__)\.__name__\s*(?:==|!=|in\b)|\.startswith\(\s*[\'"](?:Twins|GCViT|XCiT)|hasattr\(\s*(?:model|backbone)\s*,')


def _sources():
    for base in (PACKAGE, os.path.join(ROOT, 'tools')):
        for folder, _, files in os.walk(base):
            for name in sorted(files):
                if name.endswith('.py'):
                    path = os.path.join(folder, name)
                    yield os.path.relpath(path, ROOT).replace(os.sep, '/'), open(path, encoding='utf-8').read()


def _code_names(source: str):
    """Identifiers, and string literals that are exactly a name (``'XCiT'``; not help texts such as
    ``'TYPE:ARCH, e.g. TransNeXt:tiny'``)."""
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME:
            yield tok.string
        elif tok.type == tokenize.STRING and tok.string[:1] in '\'"':
            yield tok.string.strip('\'"')


def test_no_family_names_or_attribute_probes_outside_the_backbones():
    offenders = {}
    for rel, source in _sources():
        if rel.startswith('mmvit_backbones/') and rel[len('mmvit_backbones/'):].startswith(FAMILY_PLACES[:3]) or \
                rel.endswith(FAMILY_PLACES[3]) or rel in KNOWN:
            continue
        named = sorted(set(_code_names(source)) & FAMILY_CLASSES)
        probes = PROBES.findall(source)
        if named or probes:
            offenders[rel] = named + [f'probe: {p}' for p in probes]
    assert not offenders, f'modules that know families instead of reading the contract: {offenders}'


def _module_level_imports(path: str, module: str):
    """Absolute ``mmvit_backbones.*`` modules imported at module level (not inside functions)."""
    tree = ast.parse(open(path, encoding='utf-8').read())
    package = module if path.endswith('__init__.py') else module.rsplit('.', 1)[0]
    for node in tree.body:
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith('mmvit_backbones'))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ''
            if target == 'mmvit_backbones':  # from ... import compat: the submodules named
                yield from (f'{target}.{a.name}' for a in node.names)
            elif target.startswith('mmvit_backbones'):
                yield target


def _subpackage(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else ''


def _find_cycle(graph):
    state = {}

    def visit(node, path):
        state[node] = 'open'
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 'open':
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = 'done'
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_no_import_cycle_between_subpackages():
    graph = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith('.py'):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, '.')
            module = rel[:-len('.__init__')] if rel.endswith('.__init__') else rel
            source = _subpackage(module)
            for target in _module_level_imports(path, module):
                dest = _subpackage(target)
                if dest and source and dest != source:
                    graph.setdefault(source, set()).add(dest)
    cycle = _find_cycle(graph)
    assert cycle is None, f'import cycle between subpackages: {" -> ".join(cycle)}'
