"""Typed errors. Library code raises these; only the CLI turns them into messages and exit codes."""

from __future__ import annotations


class HumcleanError(Exception):
    """Base class of every error humclean raises on purpose."""


class UsageError(HumcleanError):
    """Bad arguments or paths (the CLI exits 2)."""


class DecodeError(HumcleanError):
    """A file could not be probed or decoded."""


class EncodeError(HumcleanError):
    """An output could not be encoded or written."""


class ModelError(HumcleanError):
    """A model could not be found, verified or loaded."""
