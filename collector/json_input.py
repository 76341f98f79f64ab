"""JSON from outside (an input file's line, a log line, a probe file, a request body): one parser
whose every refusal is a ``json.JSONDecodeError``.

``json.loads`` refuses most bad text with ``JSONDecodeError``, which callers turn into "FILE:LINE:
invalid JSON". Two refusals are other exceptions: an array or object nested past Python's recursion
limit (``RecursionError``) and an integer of more than 4,300 digits (``ValueError``, Python's guard
against quadratic conversion). Left as they were, one such line exited 70 (an internal error) and
stopped a log source's every later collection on the same poison line.
"""

from __future__ import annotations

import json
import math
from typing import Any


def loads(text: str | bytes) -> Any:
    """``json.loads(text)``; any refusal raises ``json.JSONDecodeError`` with a short reason."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text if isinstance(text, str) else "", 0) from None
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string conversion..."
        reason = str(exc).split(";")[0].split(":")[0] or "a value out of range"
        raise json.JSONDecodeError(reason, text if isinstance(text, str) else "", 0) from None


def non_finite(value: Any) -> bool:
    """Whether ``value`` is a float JSON gave as NaN or infinite (``NaN``, ``Infinity``, or a
    number past float's range such as ``1e400``): as an identifier it would merge distinct values
    (``1e400`` and ``2e400`` are both ``inf``)."""
    return isinstance(value, float) and not math.isfinite(value)


__all__ = ["loads", "non_finite"]
