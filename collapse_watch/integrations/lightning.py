"""The Lightning callback: ``CollapseWatchLightning`` (docs/python.md)."""

from collector.training.lightning import CollapseWatchLightning

__all__ = ["CollapseWatchLightning"]
