"""Fixtures: a fresh copy of the standard school for each test."""

from __future__ import annotations

import pytest

from .school import SchoolBuilder, standard_school


@pytest.fixture
def school() -> SchoolBuilder:
    """The shared cast of :func:`tests.gatekeeper.school.standard_school`, default settings."""
    return standard_school()
