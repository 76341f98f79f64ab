"""The probe set: the prompts a model is asked at every run, and their loader.

A probe has a stable ``id`` (:func:`prompt_id`: ``p-`` + the first 10 hex digits of the SHA-1 of its
stripped text, unless a JSONL file gives one) so runs pair by prompt across versions.  ``prompt_id``
is the one prompt identity of the product: files of outputs (``collector.inputs``) and pull sources
(``sources/jsonl.py``, ``sources/sql.py``) without an id of their own use it too, so a log, a file
and a probed run of the same prompt pair, and ``probe_set_hash`` fingerprints
a whole set so a changed set is visible in the history.

A spec is ``"default"`` (the set shipped in ``default.txt``), a ``.txt`` path (one prompt per line;
blank lines and ``#`` comments skipped) or a ``.jsonl`` path (objects ``{"prompt": ..., "id"?: ...}``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from collector import json_input


class ProbeError(ValueError):
    """A probe file is missing or malformed."""


@dataclass(frozen=True)
class Probe:
    """One prompt of the probe set."""

    id: str
    text: str


def prompt_id(text: str) -> str:
    """The stable id of a prompt text: ``p-`` + 10 hex digits of the SHA-1 of the stripped text."""
    return "p-" + hashlib.sha1(text.strip().encode("utf-8", "surrogatepass")).hexdigest()[:10]


probe_id = prompt_id  # the name the probe loader has always used


def probe_set_hash(probes: list[Probe]) -> str:
    """SHA-1 over the (id, text) pairs, order-independent: it changes when any probe changes."""
    h = hashlib.sha1()
    for p in sorted(probes, key=lambda p: p.id):
        h.update(p.id.encode("utf-8") + b"\0" + p.text.encode("utf-8") + b"\n")
    return h.hexdigest()


def _from_txt(lines: list[str], where: str) -> list[Probe]:
    probes = []
    for line in lines:
        text = line.strip()
        if text and not text.startswith("#"):
            probes.append(Probe(probe_id(text), text))
    return probes


def _from_jsonl(lines: list[str], where: str) -> list[Probe]:
    probes = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json_input.loads(line)
        except json.JSONDecodeError as e:
            raise ProbeError(f"{where}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str) or not obj["prompt"].strip():
            raise ProbeError(f'{where}:{n}: expected an object with a non-empty string "prompt"')
        pid = obj.get("id")
        if pid is not None and (not isinstance(pid, str) or not pid.strip()):
            raise ProbeError(f'{where}:{n}: "id" must be a non-empty string')
        text = obj["prompt"].strip()
        probes.append(Probe(pid.strip() if pid else probe_id(text), text))
    return probes


def load_probes(spec: str = "default") -> list[Probe]:
    """Load a probe set; raises ``ProbeError`` naming the file (and line) that is wrong."""
    if spec == "default":
        text = resources.files(__package__).joinpath("default.txt").read_text(encoding="utf-8")
        where, parser = "default probe set", _from_txt
    else:
        path = Path(spec)
        if not path.is_file():
            raise ProbeError(f"probe file not found: {path}")
        suffix = path.suffix.lower()
        if suffix not in (".txt", ".jsonl"):
            raise ProbeError(f"probe file {path} must end in .txt or .jsonl")
        text = path.read_text(encoding="utf-8")
        where, parser = str(path), _from_jsonl if suffix == ".jsonl" else _from_txt
    probes = parser(text.splitlines(), where)
    if not probes:
        raise ProbeError(f"{where}: no probes")
    seen: dict[str, int] = {}
    for i, p in enumerate(probes):
        if p.id in seen:
            raise ProbeError(f"{where}: duplicate probe id {p.id!r} ({p.text[:40]!r})")
        seen[p.id] = i
    return probes
