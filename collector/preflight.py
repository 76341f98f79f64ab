"""Kept for the CLI's import: the preflight checks live in ``collector.config.checking``."""

from __future__ import annotations

from collector.config.checking import Problem, environment_problems

__all__ = ["Problem", "environment_problems"]
