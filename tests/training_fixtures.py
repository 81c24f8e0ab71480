"""Fixtures shared by the tests that train tiny models (import them into a test module)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Two intra-op threads on 2 shared cores slow these tiny models ~10x: use one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
