"""Fixtures for the Cartesia client and emulator tests."""

from __future__ import annotations
