"""The Hugging Face ``Trainer`` (and TRL) callback: ``CollapseWatchCallback`` (docs/python.md)."""

from collector.training.transformers import CollapseWatchCallback

__all__ = ["CollapseWatchCallback"]
