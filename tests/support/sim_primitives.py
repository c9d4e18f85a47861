"""Simulation scenarios registered with :mod:`tests.support.simulations`."""

from __future__ import annotations
