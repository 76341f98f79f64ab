"""Watching a model while it trains: the core every training-loop callback shares.

A :class:`TrainingWatch` samples a fixed probe set from the model being trained (batched, fixed
seeds, the tokenizer's chat template, ``samples_per_prompt`` samples a prompt; the RNG state of
training and the model's train/eval mode are restored), records the outputs as version
``step-N`` of a named model in the SQL history through :class:`collector.api.History` (the same
store and assessment as the collector: the verdict against the first checkpoint, the baseline, and
the comparison with the previous one), and keeps the time it costs. The framework callbacks
(``collector.training.transformers``, ``collector.training.lightning``) only decide *when*.

Each training run has its own identity: versions are ``{run}/step-N`` (``run_name``, else the
trainer's run name, else the UTC start time), so two runs of one model never share a version; a
resumed run keeps its identity and skips the steps it recorded before. A database fault during a
check is logged and that check skipped: training goes on and the next check tries again. In
distributed training only the world process zero samples and records; :func:`agree` hands its
stop decision to every process.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sqlalchemy.exc import SQLAlchemyError

from collector.api import History, Recorded, Verdict, VersionExists
from collector.store.errors import StoreError, first_line
from collector.store.text import LABEL_MAX, REPLACEMENT, check_label
from collector.trends.compare import min_pairs_for
from collector.vocabulary import LONE_WATCH_METRICS, STATUSES

log = logging.getLogger("collapse_watch")

# the longest run prefix ('{run_name}/' or version_prefix) that leaves room for 'step-N' (N < 10**13)
PREFIX_MAX = LABEL_MAX - len(f"step-{10**12}")

StopOn = Literal["collapse_suspected", "watch"]
STOPS_ON: dict[str, tuple[str, ...]] = {
    "collapse_suspected": ("collapse_suspected",),
    "watch": ("watch", "collapse_suspected"),
}
VERDICT_FILE = "collapse_watch_verdict.json"
LOG_PREFIX = "collapse_watch/"
MIN_PROBES = min_pairs_for(0.05)
"""Fewer prompts than this can never reach significance: every comparison would be inconclusive."""
RUN_KEY = f"{LOG_PREFIX}run"
"""The key of the run's version prefix in the trainer's ``log_history`` (saved in each checkpoint's
``trainer_state.json``): a run resumed from a checkpoint keeps its identity."""
DATABASE_FAULTS = (SQLAlchemyError, StoreError, OSError)
"""What a database that is locked, full or unreachable raises while a check is stored."""
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_STEP_VERSION = re.compile(r"step-\d+")


class WatchOptions(BaseModel):
    """The options of a training-time watch, validated at construction (errors name the argument)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)  # "20" and True are no step counts

    model_name: str = Field(description="The model's name in the history.")
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
    run_name: str | None = Field(
        None,
        description="This training run's name: versions are '{run_name}/step-{N}' (None: the "
        "trainer's run name, else the UTC start time).",
    )
    version_prefix: str | None = Field(
        None,
        description="Versions are '{prefix}step-{N}' instead (the run's identity; not with run_name).",
    )
    check_at_start: bool = Field(
        True, description="Check when training begins (False when that model is recorded already)."
    )

    @field_validator("model_name", "run_name", mode="before")
    @classmethod
    def _label(cls, value: object, info: ValidationInfo) -> object:
        return value if value is None else check_label(value, str(info.field_name))  # the store's rule

    @field_validator("version_prefix", mode="before")
    @classmethod
    def _prefix(cls, value: object, info: ValidationInfo) -> object:
        return value if value in (None, "") else check_label(value, str(info.field_name))

    @model_validator(mode="after")
    def _one_identity(self) -> WatchOptions:
        if self.run_name is not None and self.version_prefix is not None:
            raise ValueError("give run_name or version_prefix, not both (each names the run's versions)")
        for field, prefix in (("run_name", f"{self.run_name}/"), ("version_prefix", self.version_prefix)):
            if getattr(self, field) is not None and len(prefix or "") > PREFIX_MAX:
                raise ValueError(
                    f"{field}: {len(prefix or '')} characters leave no room for 'step-N' in a "
                    f"{LABEL_MAX}-character version label (at most {PREFIX_MAX} with its separator)"
                )
        return self

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
        for i, prompt in enumerate(value):
            bad = _LONE_SURROGATE.search(prompt) or re.search("\x00", prompt)
            if bad:
                raise ValueError(
                    f"probe {i} holds {'NUL' if bad.group() == chr(0) else 'a lone surrogate'} "
                    f"\\u{ord(bad.group()):04x} at index {bad.start()}: a prompt must be valid text"
                )
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
        problems = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e["loc"]) or "arguments"
            msg = e["msg"].removeprefix("Value error, ")
            problems.append(msg if msg.startswith(f"{where}: ") else f"{where}: {msg}")
        raise ValueError(f"CollapseWatch: {'; '.join(problems)}") from None
    except TypeError as exc:  # a name that is not a string (check_label)
        raise TypeError(f"CollapseWatch: {exc}") from None


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
    for metric in LONE_WATCH_METRICS:  # the verdict's headline metrics (Thresholds' default)
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


def verdict_document(check: Check, model_name: str, run: str) -> dict[str, Any]:
    """The JSON written beside a checkpoint: the latest check, its verdict vs the baseline and the
    comparison with the previous check, with every per-metric change."""
    r = check.recorded
    return {
        "model": model_name,
        "run": run,
        "version": r.version,
        "step": check.step,
        "run_id": r.run_id,
        "status": r.verdict.status,
        "reasons": list(r.verdict.reasons),
        "vs_baseline": asdict(r.verdict),
        "vs_previous": None if r.vs_previous is None else asdict(r.vs_previous),
    }


def is_process_zero() -> bool:
    """Whether this is the world process zero (or not distributed), from the launcher's ``RANK``."""
    return os.environ.get("RANK", "0").strip() in ("", "0")


def agree(stop: bool) -> bool:
    """Process zero's stop decision, on every process of a ``torch.distributed`` run (a broadcast
    that every process must reach at the same point); ``stop`` itself when not distributed."""
    try:
        import torch
        import torch.distributed as dist
    except ImportError:
        return stop
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return stop
    device = torch.device("cpu")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    flag = torch.tensor([1 if stop else 0], dtype=torch.int32, device=device)
    dist.broadcast(flag, src=0)
    return bool(flag.item())


class TrainingWatch:
    """Probes, records and judges a model in training; tells when to stop. Framework-agnostic.

    Only the process that records (``records``: the world process zero) opens the history."""

    def __init__(self, opts: WatchOptions, *, records: bool | None = None) -> None:
        self.opts = opts
        self.records = is_process_zero() if records is None else records
        self._history = History(opts.database_url) if self.records else None
        self.checks: list[Check] = []
        self.stop_reason: str | None = None
        self.spent = 0.0  # seconds inside checks
        self.started: float | None = None
        self.skipped: list[int] = []  # steps whose scheduled check the time bound skipped
        self.failed: list[int] = []  # steps whose check a database fault skipped
        self.recorded_before: list[int] = []  # steps a resumed run had recorded already
        self.done: set[int] = set()  # steps checked (or skipped for a reason said in the log)
        self.prefix: str | None = None  # versions are f"{prefix}step-{N}"; set by start()
        self.replaced = 0  # lone surrogates in sampled outputs, replaced by U+FFFD

    @property
    def history(self) -> History:
        if self._history is None:
            self._history = History(self.opts.database_url)
        return self._history

    @property
    def run(self) -> str:
        """The run's name as the versions show it (their prefix without its trailing '/')."""
        return (self.prefix or "").removesuffix("/")

    def begin(self) -> None:
        if self.started is None:
            self.started = time.perf_counter()

    def start(self, step: int, *, resumed: str | None = None, hint: str | None = None) -> str:
        """Fix the run's identity when training starts at ``step`` (> 0: resumed from a checkpoint):
        ``version_prefix`` or ``run_name`` when given, else ``resumed`` (the prefix the checkpoint's
        state names), else ``hint`` (the trainer's run name), else the UTC time. A new run (step 0)
        whose versions the history already holds is refused when named by the user, and otherwise
        renamed ``name-2``, ``name-3``, ...; a resumed run skips the steps it recorded. Returns the prefix."""
        if self.prefix is not None:
            return self.prefix
        opts = self.opts
        chosen = True
        if opts.version_prefix is not None:
            prefix = opts.version_prefix
        elif opts.run_name is not None:
            prefix = f"{opts.run_name}/"
        elif resumed is not None:
            prefix = resumed
        else:
            chosen = False
            name = hint.strip() if hint and hint.strip() else datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            prefix = f"{name[: PREFIX_MAX - 1]}/"  # a derived name is cut to fit, never refused
        longest = f"{prefix}step-{10**12}"
        if len(longest) > LABEL_MAX:
            raise ValueError(
                f"CollapseWatch: run name {prefix!r} leaves no room for 'step-N' in a {LABEL_MAX}-character "
                "version label; give a shorter run_name"
            )
        check_label(longest, "the run's versions")
        if self.records:
            prefix = self._claim(prefix, step, chosen)
        self.prefix = prefix
        return prefix

    def _claim(self, prefix: str, step: int, chosen: bool) -> str:
        def taken(p: str) -> list[str]:
            return [
                v
                for v in self.history.versions(self.opts.model_name)
                if v.startswith(p) and _STEP_VERSION.fullmatch(v[len(p) :])
            ]

        held = taken(prefix)
        if not held:
            return prefix
        if step > 0:
            log.info(
                "collapse-watch: resuming run %r of %s at step %d; steps it recorded before are skipped",
                prefix,
                self.opts.model_name,
                step,
            )
            return prefix
        if chosen:
            raise ValueError(
                f"CollapseWatch: {self.opts.model_name} already has versions of the run {prefix!r} "
                f"({', '.join(held[:3])}{', ...' if len(held) > 3 else ''}) in the history, and this "
                "training starts at step 0: give another run_name (or version_prefix), or resume "
                "that run from its checkpoint"
            )
        base = prefix.removesuffix("/")
        n = 2
        while taken(f"{base}-{n}/"):
            n += 1
        log.info("collapse-watch: run %r is in the history already; this run is %r", base, f"{base}-{n}")
        return f"{base}-{n}/"

    def version(self, step: int) -> str:
        return f"{self.prefix if self.prefix is not None else self.start(step)}step-{step}"

    def elapsed(self) -> float:
        return 0.0 if self.started is None else time.perf_counter() - self.started

    def time_share(self) -> float:
        """Share of the wall time since training began that the checks took."""
        elapsed = self.elapsed()
        return self.spent / elapsed if elapsed > 0 else 0.0

    def checked(self, step: int) -> bool:
        return step in self.done

    def due(self, step: int) -> bool:
        """Whether ``step`` is an ``every_steps`` step (the same answer on every process)."""
        every = self.opts.every_steps
        return every is not None and step % every == 0

    def scheduled(self, step: int) -> bool:
        """Whether ``step`` is an ``every_steps`` check that the time bound allows."""
        if not self.due(step) or self.checked(step):
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

    def check(self, model: Any, tokenizer: Any, step: int) -> Check | None:
        """Sample the probes from ``model``, record them as version ``{run}/step-N`` and assess
        them. None when the check was skipped: the step was recorded before this run resumed, or
        the database failed (one warning; training goes on and the next check tries again)."""
        self.done.add(step)
        version = self.version(step)
        name = self.opts.model_name
        t0 = time.perf_counter()
        try:
            if self.history.recorded_run(name, version) is not None:
                return self._recorded_before(step, version)
            outputs = self._clean(sample_probes(model, tokenizer, self.opts))
            recorded = self.history.record(name, version, outputs, embeddings=self.opts.embeddings, seed=0)
        except VersionExists:  # recorded by another process since
            return self._recorded_before(step, version)
        except DATABASE_FAULTS as exc:
            self.spent += time.perf_counter() - t0
            self.failed.append(step)
            log.warning(
                "collapse-watch: check of %s@%s at step %d skipped, the history database failed (%s); "
                "training goes on and the next check tries again",
                name,
                version,
                step,
                first_line(exc),
            )
            return None
        check = Check(step, recorded, time.perf_counter() - t0)
        self.spent += check.seconds
        self.checks.append(check)
        v = check.verdict
        log.info("collapse-watch: %s@%s %s vs %s (%.1fs)", name, version, v.status, v.baseline, check.seconds)
        if self.opts.stop_on and v.status in STOPS_ON[self.opts.stop_on] and self.stop_reason is None:
            self.stop_reason = (
                f"collapse-watch stopped training at step {step}: {name}@{version} is "
                f"{v.status} against {v.baseline}: " + "; ".join(v.reasons[:3])
            )
            log.warning(self.stop_reason)
        return check

    def _recorded_before(self, step: int, version: str) -> None:
        self.recorded_before.append(step)
        log.info(
            "collapse-watch: %s@%s is in the history already (recorded before this run resumed); "
            "step %d is not checked again",
            self.opts.model_name,
            version,
            step,
        )

    def _clean(self, outputs: dict[str, list[str]]) -> dict[str, list[str]]:
        """Lone surrogates a tokenizer decoded (no UTF-8 encoder takes them) become U+FFFD, as the
        collector makes sampled text safe (``collector.vetting``); said once in the log."""
        n = sum(len(_LONE_SURROGATE.findall(o)) for outs in outputs.values() for o in outs)
        if not n:
            return outputs
        if not self.replaced:
            log.warning(
                "collapse-watch: the model's outputs hold %d lone surrogate(s) (invalid Unicode from the "
                "tokenizer's decode); stored as U+FFFD",
                n,
            )
        self.replaced += n
        return {p: [_LONE_SURROGATE.sub(REPLACEMENT, o) for o in outs] for p, outs in outputs.items()}

    def stop_from_process_zero(self, stop: bool) -> bool:
        """``agree`` on the stop decision; a process other than zero learns why in its log."""
        stop = agree(stop)
        if stop and self.stop_reason is None:
            self.stop_reason = "collapse-watch: the world process zero's check stopped training"
            log.warning(self.stop_reason)
        return stop

    def write_verdict(self, directory: str | os.PathLike[str]) -> Path | None:
        """Write the latest check's verdict as ``collapse_watch_verdict.json`` in ``directory``."""
        if not self.checks:
            return None
        path = Path(directory) / VERDICT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(
            json.dumps(verdict_document(self.checks[-1], self.opts.model_name, self.run), indent=2) + "\n",
            encoding="utf-8",
        )
        os.replace(tmp, path)
        return path

    def summary(self) -> dict[str, Any]:
        """What the watch did: checks, their verdicts, the measured time share, why it stopped."""
        return {
            "run": self.run,
            "checks": [(c.step, c.recorded.version, c.verdict.status) for c in self.checks],
            "check_seconds": self.spent,
            "elapsed_seconds": self.elapsed(),
            "time_share": self.time_share(),
            "skipped_steps": list(self.skipped),
            "failed_steps": list(self.failed),
            "recorded_before_steps": list(self.recorded_before),
            "stop_reason": self.stop_reason,
        }

    def close(self) -> None:
        if self._history is not None:
            self._history.close()


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
