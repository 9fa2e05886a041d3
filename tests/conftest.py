"""Shared fixtures. Tests run on CPU with few threads so the suite stays fast and deterministic."""
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
TESTS = os.path.dirname(os.path.abspath(__file__))
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

import mmvit_backbones  # noqa: E402,F401  (registers the backbones)

FIXTURES = os.path.join(TESTS, 'fixtures')


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def fixtures_dir():
    return FIXTURES


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: a long test (parity at real sizes, DDP, export sweeps); '
                                       'a quick run deselects them with -m "not slow"')
    config.addinivalue_line('markers', 'lane_once: a fact that does not depend on the torch version (the wheel and '
                                       'its package data); `make test` runs it, `make test-torch21` does not')


# Modules whose tests train, compile or package (subprocesses of whole runs): all slow.
SLOW_MODULES = {'test_compile', 'test_resume', 'test_tools', 'test_train_test_cli', 'test_packaging'}


# Modules checked on one lane only (CI runs both; see the Makefile's test-torch21).
LANE_ONCE_MODULES = {'test_packaging'}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit('.', 1)[-1] if item.module is not None else ''
        if module in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
        if module in LANE_ONCE_MODULES:
            item.add_marker(pytest.mark.lane_once)
