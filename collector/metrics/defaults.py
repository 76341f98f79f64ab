"""The suite's defaults for a score's intervals, in a module that imports nothing, so the command
line can show them in ``--help`` without loading numpy (``collector.metrics.suite`` re-exports them)."""

DEFAULT_BOOTSTRAP = 200  # bootstrap replicates (and random halves) for the 95% intervals
DEFAULT_SEED = 0
