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
