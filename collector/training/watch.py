"""Watching a model while it trains: the core every training-loop callback shares.

A :class:`TrainingWatch` samples a fixed probe set from the model being trained (batched, fixed
seeds, the tokenizer's chat template, ``samples_per_prompt`` samples a prompt; the RNG state of
training and the model's train/eval mode are restored), records the outputs as version
``step-N`` of a named model in the SQL history through :class:`collector.api.History` (the same
store and assessment as the collector: the verdict against the first checkpoint, the baseline, and
the comparison with the previous one), and keeps the time it costs. The framework callbacks
(``collector.training.transformers``, ``collector.training.lightning``) only decide *when*.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from collector.api import History, Recorded, Verdict
from collector.trends.compare import min_pairs_for
from collector.trends.verdict import STATUSES, Thresholds

log = logging.getLogger("collapse_watch")

StopOn = Literal["collapse_suspected", "watch"]
STOPS_ON: dict[str, tuple[str, ...]] = {
    "collapse_suspected": ("collapse_suspected",),
    "watch": ("watch", "collapse_suspected"),
}
VERDICT_FILE = "collapse_watch_verdict.json"
LOG_PREFIX = "collapse_watch/"
MIN_PROBES = min_pairs_for(0.05)
"""Fewer prompts than this can never reach significance: every comparison would be inconclusive."""


class WatchOptions(BaseModel):
    """The options of a training-time watch, validated at construction (errors name the argument)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name: str = Field(min_length=1, description="The model's name in the history.")
    probes: list[str] = Field(description="The probe prompts (a list, or a .txt/.jsonl probes file).")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the history (None: the CLI's default)."
    )
    every_steps: int | None = Field(
        20, ge=1, description="Check every N optimizer steps (None: at saves/evaluations)."
    )
    samples_per_prompt: int = Field(
        4, ge=2, description="Samples per probe prompt (within-prompt metrics need 2)."
    )
    max_new_tokens: int = Field(64, ge=1, le=4096)
    temperature: float = Field(1.0, gt=0.0, le=10.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int = Field(1234, ge=0, description="Sampling seed: every check samples with the same one.")
    batch_size: int = Field(32, ge=1, description="Sequences generated at once.")
    stop_on: StopOn | None = Field(None, description="Stop training on this verdict (or a worse one).")
    embeddings: bool | str = Field(
        True, description="True: the packaged MiniLM; False: lexical only; or a model."
    )
    max_time_share: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="Skip a scheduled check while checks took more than this share of time.",
    )
    version_prefix: str = Field("", description="Versions are '{prefix}step-{N}'.")
    check_at_start: bool = Field(
        True, description="Check when training begins (False when that model is recorded already)."
    )

    @field_validator("probes", mode="before")
    @classmethod
    def _probes(cls, value: object) -> list[str]:
        if isinstance(value, str | os.PathLike):
            from collector.probes import load_probes

            path = Path(value)
            if str(value) != "default" and not path.is_file():
                raise ValueError(
                    f"{str(value)!r} is not a probes file (.txt or .jsonl); give a list of prompts or a path"
                )
            value = [p.text for p in load_probes(str(value))]
        if not isinstance(value, list | tuple) or not all(isinstance(p, str) and p.strip() for p in value):
            raise ValueError("expected a list of non-empty prompt strings or the path of a probes file")
        if len(set(value)) != len(value):
            raise ValueError(
                "the probe prompts repeat; each prompt once (samples_per_prompt samples it k times)"
            )
        if len(value) < MIN_PROBES:
            raise ValueError(
                f"{len(value)} probes: a comparison needs at least {MIN_PROBES} prompts to reach "
                "significance (use 20 or more for a sensitive check)"
            )
        return list(value)

    @field_validator("embeddings")
    @classmethod
    def _embeddings(cls, value: bool | str) -> bool | str:
        if isinstance(value, str) and not value.strip():
            raise ValueError("a sentence-transformers model name or path, True or False")
        return value


def options(**kwargs: Any) -> WatchOptions:
    """Validated options; a ``ValueError`` names every bad argument at once."""
    try:
        return WatchOptions(**kwargs)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"CollapseWatch: {problems}") from None


@dataclass(frozen=True)
class Check:
    """One probe of the model at an optimizer step, as recorded."""

    step: int
    recorded: Recorded
    seconds: float  # sampling + scoring + storing + assessing

    @property
    def verdict(self) -> Verdict:
        return self.recorded.verdict


def log_values(check: Check, time_share: float) -> dict[str, float]:
    """The numbers a training log receives (``collapse_watch/...``): the headline metrics in both
    scopes, the verdict against the baseline one-hot over the statuses (as ``/metrics`` exports
    it), how many metrics declined significantly, and the time it cost."""
    values: dict[str, float] = {}
    scores = check.recorded.scores
    for metric in Thresholds().headline_metrics:
        for scope in ("within", "across"):
            value = next((m.value for m in scores.metrics if m.metric == metric and m.scope == scope), None)
            if value is not None:
                values[f"{LOG_PREFIX}{metric}_{scope}"] = value
    for status in STATUSES:
        values[f"{LOG_PREFIX}verdict_{status}"] = float(check.verdict.status == status)
    values[f"{LOG_PREFIX}declined_metrics"] = float(len(check.verdict.declined))
    values[f"{LOG_PREFIX}check_seconds"] = check.seconds
    values[f"{LOG_PREFIX}time_share"] = time_share
    return values


def verdict_document(check: Check, model_name: str) -> dict[str, Any]:
    """The JSON written beside a checkpoint: the latest check, its verdict vs the baseline and the
    comparison with the previous check, with every per-metric change."""
    r = check.recorded
    return {
        "model": model_name,
        "version": r.version,
        "step": check.step,
        "run_id": r.run_id,
        "status": r.verdict.status,
        "reasons": list(r.verdict.reasons),
        "vs_baseline": asdict(r.verdict),
        "vs_previous": None if r.vs_previous is None else asdict(r.vs_previous),
    }


class TrainingWatch:
    """Probes, records and judges a model in training; tells when to stop. Framework-agnostic."""

    def __init__(self, opts: WatchOptions) -> None:
        self.opts = opts
        self.history = History(opts.database_url)
        self.checks: list[Check] = []
        self.stop_reason: str | None = None
        self.spent = 0.0  # seconds inside checks
        self.started: float | None = None
        self.skipped: list[int] = []  # steps whose scheduled check the time bound skipped

    def begin(self) -> None:
        if self.started is None:
            self.started = time.perf_counter()

    def elapsed(self) -> float:
        return 0.0 if self.started is None else time.perf_counter() - self.started

    def time_share(self) -> float:
        """Share of the wall time since training began that the checks took."""
        elapsed = self.elapsed()
        return self.spent / elapsed if elapsed > 0 else 0.0

    def checked(self, step: int) -> bool:
        return any(c.step == step for c in self.checks)

    def scheduled(self, step: int) -> bool:
        """Whether ``step`` is an ``every_steps`` check that the time bound allows."""
        every = self.opts.every_steps
        if every is None or step % every or self.checked(step):
            return False
        bound = self.opts.max_time_share
        if bound is not None and self.checks and self.time_share() > bound:
            self.skipped.append(step)
            log.info(
                "collapse-watch: check at step %d skipped (checks took %.0f%% of the time, bound %.0f%%)",
                step,
                100 * self.time_share(),
                100 * bound,
            )
            return False
        return True

    def check(self, model: Any, tokenizer: Any, step: int) -> Check:
        """Sample the probes from ``model``, record them as version ``step-N`` and assess them."""
        t0 = time.perf_counter()
        outputs = sample_probes(model, tokenizer, self.opts)
        version = f"{self.opts.version_prefix}step-{step}"
        recorded = self.history.record(
            self.opts.model_name, version, outputs, embeddings=self.opts.embeddings, seed=0
        )
        check = Check(step, recorded, time.perf_counter() - t0)
        self.spent += check.seconds
        self.checks.append(check)
        v = check.verdict
        log.info(
            "collapse-watch: %s@%s %s vs %s (%.1fs)",
            self.opts.model_name,
            version,
            v.status,
            v.baseline,
            check.seconds,
        )
        if self.opts.stop_on and v.status in STOPS_ON[self.opts.stop_on] and self.stop_reason is None:
            self.stop_reason = (
                f"collapse-watch stopped training at step {step}: {self.opts.model_name}@{version} is "
                f"{v.status} against {v.baseline}: " + "; ".join(v.reasons[:3])
            )
            log.warning(self.stop_reason)
        return check

    def write_verdict(self, directory: str | os.PathLike[str]) -> Path | None:
        """Write the latest check's verdict as ``collapse_watch_verdict.json`` in ``directory``."""
        if not self.checks:
            return None
        path = Path(directory) / VERDICT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(
            json.dumps(verdict_document(self.checks[-1], self.opts.model_name), indent=2) + "\n",
            encoding="utf-8",
        )
        os.replace(tmp, path)
        return path

    def summary(self) -> dict[str, Any]:
        """What the watch did: checks, their verdicts, the measured time share, why it stopped."""
        return {
            "checks": [(c.step, c.recorded.version, c.verdict.status) for c in self.checks],
            "check_seconds": self.spent,
            "elapsed_seconds": self.elapsed(),
            "time_share": self.time_share(),
            "skipped_steps": list(self.skipped),
            "stop_reason": self.stop_reason,
        }

    def close(self) -> None:
        self.history.close()


def sample_probes(model: Any, tokenizer: Any, opts: WatchOptions) -> dict[str, list[str]]:
    """``{prompt: samples}`` from the model as it is now. The global RNG state (training's
    randomness) and the model's train/eval mode are restored afterwards."""
    import torch

    from collector.llm import sample_chat

    was_training = model.training
    device = next(model.parameters()).device
    devices = [device.index or 0] if device.type == "cuda" else []
    added_pad = tokenizer.pad_token is None
    if added_pad:
        tokenizer.pad_token = tokenizer.eos_token
    # Mixed precision (accelerate, as the Trainer prepares it) wraps ``forward`` in autocast after the
    # first check was made: sample every check with the model's own weights and dtype, as a saved
    # checkpoint would be sampled, so checks differ only by what training changed.
    wrapped = model.__dict__.get("forward") if hasattr(model, "_original_forward") else None
    if wrapped is not None:
        model.forward = model._original_forward
    model.eval()
    try:
        with torch.random.fork_rng(devices=devices):
            samples = sample_chat(
                tokenizer,
                model,
                opts.probes,
                k=opts.samples_per_prompt,
                temperature=opts.temperature,
                top_p=opts.top_p,
                max_new_tokens=opts.max_new_tokens,
                seed=opts.seed,
                batch_size=opts.batch_size,
            )
    finally:
        model.train(was_training)
        if wrapped is not None:
            model.forward = wrapped
        if added_pad:
            tokenizer.pad_token = None
    return dict(zip(opts.probes, samples, strict=True))
