"""collapse-watch as a library: score outputs, compare two sets, record versions in the history.

The public names live here; the implementation is in ``collector`` (``collector.api``), which the
command line, the collector and the training callbacks share. See docs/python.md.

>>> import collapse_watch
>>> collapse_watch.compare(["a b c", "d e f"], ["a b c", "d e f"], embeddings=False).status
'inconclusive'
"""

from collector import __version__
from collector.api import (
    EXIT_CODES,
    History,
    MetricChange,
    MetricScore,
    Recorded,
    Scores,
    Verdict,
    VersionExists,
    compare,
    score,
)

__all__ = [
    "EXIT_CODES",
    "History",
    "MetricChange",
    "MetricScore",
    "Recorded",
    "Scores",
    "Verdict",
    "VersionExists",
    "__version__",
    "compare",
    "score",
]
