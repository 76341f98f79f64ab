"""The Python API: score outputs, compare two sets (the release gate), record versions in the history.

Everything here is a thin layer over the gate the command line uses (``collector.gate``):
:func:`collector.scoring.score_batch` scores, :func:`collector.gate.compare_sides` compares and
decides, and :meth:`History.record` stores a run and assesses it with ``gate.record_run`` and
``gate.assess_recorded``, exactly as ``collapse-watch score --store`` does. The
results are handed back as frozen dataclasses of plain values (:class:`Scores`, :class:`Verdict`,
:class:`Recorded`), so a caller never touches the internal types. ``collapse_watch`` re-exports the
public names (docs/python.md).

Outputs are given either as a list of texts with ``prompts`` (one prompt per output, in the same
order) or as a mapping ``{prompt: [outputs...]}``; ``compare`` also takes the path of a JSONL/CSV file
of outputs (the files `collapse-watch compare` reads). Bad arguments raise ``ValueError`` or
``TypeError`` naming the argument and the position.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias

from collector import gate
from collector.metrics.base import Sample
from collector.metrics.defaults import DEFAULT_BOOTSTRAP, DEFAULT_SEED
from collector.probes import prompt_id
from collector.store.errors import VersionExists
from collector.store.text import check_label, lone_surrogate_at
from collector.vocabulary import EXIT_CODES, Status

if TYPE_CHECKING:
    from collector.comparison import BatchComparison
    from collector.metrics.result import SuiteResult
    from collector.scoring import EmbedFn
    from collector.store import Store
    from collector.trends import Verdict as TrendVerdict

Outputs: TypeAlias = "Sequence[str] | Mapping[str, Sequence[str]]"
Embeddings: TypeAlias = "bool | str"

# EXIT_CODES (re-exported, public): the exit status `collapse-watch compare` gives each verdict
# (:attr:`Verdict.exit_code`).


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) or math.isinf(x) else float(x)


@dataclass(frozen=True)
class MetricScore:
    """One metric in one scope (``within`` prompts, or ``across`` the pooled outputs) with its
    bootstrap 95% interval; ``value`` is None when the batch could not be scored on it."""

    metric: str
    scope: Literal["within", "across"]
    family: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    higher_is_diverse: bool


@dataclass(frozen=True)
class Scores:
    """Every metric of one set of outputs (:func:`score`)."""

    n_outputs: int
    n_prompts: int
    n_blank: int
    metrics: tuple[MetricScore, ...]

    def get(self, metric: str, scope: Literal["within", "across"] = "within") -> MetricScore:
        """The score of ``metric`` in ``scope``; ``KeyError`` names the metrics there are."""
        for m in self.metrics:
            if m.metric == metric and m.scope == scope:
                return m
        raise KeyError(
            f"no {metric!r} in scope {scope!r}; scored: {sorted({m.metric for m in self.metrics})}"
        )

    def values(self, scope: Literal["within", "across"] = "within") -> dict[str, float | None]:
        """``{metric: value}`` of one scope (what a training log receives)."""
        return {m.metric: m.value for m in self.metrics if m.scope == scope}


@dataclass(frozen=True)
class MetricChange:
    """The candidate against the baseline on one metric in one scope.

    ``change`` is on the metric's ``scale``: a difference for rates (``-0.06`` is −6 points), a
    relative change for the others (``-0.30`` is ×0.70); ``change_text`` says it in words.
    ``significant_decline`` is what the verdict counts.
    """

    metric: str
    scope: str
    family: str
    baseline: float | None
    candidate: float | None
    scale: str
    change: float | None
    ci_low: float | None
    ci_high: float | None
    change_text: str
    p_value: float | None
    significant_decline: bool
    higher_is_diverse: bool


@dataclass(frozen=True)
class Verdict:
    """The decision on a candidate against a baseline: ``status``, its ``reasons`` (worst first)
    and every per-metric change. ``exit_code`` is what `collapse-watch compare` would exit with."""

    status: Status
    reasons: tuple[str, ...]
    baseline: str
    candidate: str
    n_shared_prompts: int
    changes: tuple[MetricChange, ...] = ()

    @property
    def exit_code(self) -> int:
        return gate.exit_code(self.status)

    @property
    def declined(self) -> tuple[str, ...]:
        """``metric/scope`` of every significant decline, in suite order."""
        return tuple(f"{c.metric}/{c.scope}" for c in self.changes if c.significant_decline)

    def change(self, metric: str, scope: str = "within") -> MetricChange:
        """The change of ``metric`` in ``scope``; ``KeyError`` when it was not compared."""
        for c in self.changes:
            if c.metric == metric and c.scope == scope:
                return c
        raise KeyError(f"{metric!r} in scope {scope!r} was not compared")


@dataclass(frozen=True)
class Recorded:
    """What :meth:`History.record` stored: the run, its verdict against the model's baseline
    version, and its comparison with the previous version (None for the first version)."""

    model: str
    version: str
    run_id: int
    verdict: Verdict
    vs_previous: Verdict | None
    scores: Scores


def scores_of(result: SuiteResult) -> Scores:
    """The public view of a suite result (intervals clipped to each metric's range, as printed)."""
    from collector.trends.change import clip_value_interval

    return Scores(
        n_outputs=result.n_samples,
        n_prompts=result.n_prompts,
        n_blank=result.n_blank,
        metrics=tuple(
            MetricScore(v.metric, v.scope, v.family, _num(v.value), _num(lo), _num(hi), v.higher_is_diverse)
            for v in result.values
            for lo, hi in [clip_value_interval(v.metric, v.ci_low, v.ci_high)]
        ),
    )


def verdict_of(bc: BatchComparison) -> Verdict:
    """The public view of a batch comparison and its verdict."""
    from collector.trends import format_change

    changes = tuple(
        MetricChange(
            metric=r.metric,
            scope=r.scope,
            family=r.family,
            baseline=_num(c.base_mean),
            candidate=_num(c.cand_mean),
            scale=c.scale,
            change=_num(c.change),
            ci_low=_num(c.change_ci_low),
            ci_high=_num(c.change_ci_high),
            change_text=format_change(r.metric, c.change),
            p_value=_num(c.p_value) if c.scorable else None,
            significant_decline=c.significant_decline,
            higher_is_diverse=c.higher_is_diverse,
        )
        for r in bc.rows
        for c in [r.comparison]
    )
    v = bc.verdict
    return Verdict(v.status, tuple(v.reasons), bc.baseline, bc.candidate, bc.n_shared_prompts, changes)


def bare_verdict(v: TrendVerdict, baseline: str, candidate: str) -> Verdict:
    """A verdict with nothing compared (the baseline version itself)."""
    return Verdict(v.status, tuple(v.reasons), baseline, candidate, 0)


# ---------------------------------------------------------------- arguments


def samples_of(outputs: object, prompts: object, name: str = "outputs") -> list[Sample]:
    """Validated samples from a list of outputs (+ aligned ``prompts``) or a ``{prompt: outputs}``
    mapping. Outputs without prompts are one group (prompt ``""``): within-prompt metrics then
    measure the whole set, and a comparison has one pair only (``inconclusive``)."""
    if isinstance(outputs, Mapping):
        if prompts is not None:
            raise TypeError(f"{name}: give prompts either as the mapping's keys or as prompts=, not both")
        pairs: list[tuple[object, object]] = []
        for prompt, outs in outputs.items():
            if isinstance(outs, str) or not isinstance(outs, Sequence):
                raise TypeError(
                    f"{name}[{prompt!r}]: expected a list of output texts, got {type(outs).__name__}"
                )
            pairs.extend((prompt, o) for o in outs)
    else:
        if isinstance(outputs, str | bytes) or not isinstance(outputs, Sequence):
            raise TypeError(
                f"{name}: expected a list of output texts or a {{prompt: [outputs]}} mapping, "
                f"got {type(outputs).__name__}"
            )
        if prompts is None:
            pairs = [("", o) for o in outputs]
        else:
            if isinstance(prompts, str | bytes) or not isinstance(prompts, Sequence):
                raise TypeError(f"prompts: expected a list of prompt texts, got {type(prompts).__name__}")
            if len(prompts) != len(outputs):
                raise ValueError(
                    f"prompts: {len(prompts)} prompts for {len(outputs)} {name}; give one prompt per output"
                )
            pairs = list(zip(prompts, outputs, strict=True))
    if not pairs:
        raise ValueError(f"{name}: no outputs to score")
    samples = []
    for i, (prompt, output) in enumerate(pairs):
        if not isinstance(prompt, str):
            raise TypeError(f"{name}: the prompt of output {i} is a {type(prompt).__name__}, not a string")
        if not isinstance(output, str):
            raise TypeError(f"{name}: output {i} is a {type(output).__name__}, not a string")
        for field, text in (("the prompt of output", prompt), ("output", output)):
            bad = lone_surrogate_at(text)
            if bad is not None:  # as a file's text is refused (collector.inputs); no metric can encode it
                raise ValueError(
                    f"{name}: {field} {i} holds invalid Unicode (lone surrogate \\u{ord(text[bad]):04x} "
                    f"at character {bad + 1}); replace it first, e.g. "
                    "text.encode('utf-8', 'replace').decode('utf-8')"
                )
        samples.append(Sample(prompt_id=prompt_id(prompt) if prompt else "", output=output, prompt=prompt))
    return samples


def _side(value: object, prompts: object, name: str) -> list[Sample]:
    """A side of :func:`compare`: the path of a JSONL/CSV file, or outputs as :func:`samples_of` takes them."""
    if not isinstance(value, str | os.PathLike):
        return samples_of(value, prompts, name)
    from collector.inputs import read_records

    if prompts is not None:
        raise TypeError(f"{name}: a file names its own prompts; prompts= is for lists of outputs")
    path = Path(value)
    if not path.is_file():
        raise ValueError(
            f"{name}: {str(value)!r} is not a file of outputs (give a path, a list or a mapping)"
        )
    return [r.sample for r in read_records(path)]


def metric_list(metrics: Sequence[str] | None) -> list[str] | None:
    """Validated metric names (None: the whole suite)."""
    if metrics is None:
        return None
    if isinstance(metrics, str) or not isinstance(metrics, Sequence):
        raise TypeError(f"metrics: expected a list of metric names, got {type(metrics).__name__}")
    from collector.metrics.registry import select_metrics

    select_metrics(list(metrics))  # raises ValueError naming the unknown ones
    return list(metrics)


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: must be at least {minimum}, got {value}")
    return value


@functools.lru_cache(maxsize=4)
def _embedder(model: str) -> EmbedFn:
    from collector.service import build_embedder

    return build_embedder(model)


def embedder_for(embeddings: Embeddings, store: Store | None = None) -> EmbedFn | None:
    """The embedder ``embeddings`` asks for: None (lexical only) for False, the packaged MiniLM for
    True, a sentence-transformers name or path for a string. Without a store it is built once per
    process and model; with one its vectors are kept in the history database."""
    if embeddings is False:
        return None
    if embeddings is True:
        model = "default"
    elif isinstance(embeddings, str) and embeddings.strip():
        model = embeddings
    else:
        raise TypeError(
            f"embeddings: expected True, False or a sentence-transformers model name, got {embeddings!r}"
        )
    if store is None:
        return _embedder(model)
    from collector.service import build_embedder

    return build_embedder(model, store=store)


# ---------------------------------------------------------------- the three entry points


def score(
    outputs: Outputs,
    prompts: Sequence[str] | None = None,
    *,
    embeddings: Embeddings = True,
    metrics: Sequence[str] | None = None,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
) -> Scores:
    """Every diversity metric of a set of outputs, within prompts and across them, with 95% intervals.

    ``embeddings=False`` skips the embedding model and its metrics (lexical only).

    >>> import collapse_watch
    >>> s = collapse_watch.score(
    ...     {"Name a colour.": ["Red.", "A deep blue.", "Green, like grass."],
    ...      "Name a fruit.": ["An apple.", "Mango!", "Pears are nice."]},
    ...     embeddings=False,
    ... )
    >>> s.n_outputs, s.n_prompts
    (6, 2)
    >>> s.get("distinct_2").value
    1.0
    >>> collapse_watch.score(["Same.", "Same."], embeddings=False).get("duplicate_rate").value
    1.0
    """
    samples = samples_of(outputs, prompts)
    from collector.scoring import score_batch

    result = score_batch(
        "outputs",
        samples,
        metrics=metric_list(metrics),
        embed=embedder_for(embeddings),
        n_boot=_check_int("bootstrap", bootstrap, 10),
        seed=_check_int("seed", seed, 0),
    )
    return scores_of(result.result)


def compare(
    baseline: Outputs | str | os.PathLike[str],
    candidate: Outputs | str | os.PathLike[str],
    *,
    prompts: Sequence[str] | None = None,
    candidate_prompts: Sequence[str] | None = None,
    embeddings: Embeddings = True,
    metrics: Sequence[str] | None = None,
    seed: int = DEFAULT_SEED,
) -> Verdict:
    """Compare a candidate's outputs with a baseline's on the same prompts: the release gate.

    Each side is a list of outputs (with ``prompts``; ``candidate_prompts`` when the candidate's
    differ), a ``{prompt: [outputs]}`` mapping, or the path of a JSONL/CSV file. Returns the verdict
    (``ok``, ``watch``, ``collapse_suspected`` or ``inconclusive``), its reasons and every
    per-metric change with its interval and p-value, as `collapse-watch compare` decides them.

    >>> import collapse_watch
    >>> prompts = [f"Write a line about topic {i}." for i in range(10) for _ in range(4)]
    >>> varied = [f"Line {j} on {i}: {'abcdefghij'[j:]} {i * j}" for i in range(10) for j in range(4)]
    >>> same = ["It is what it is."] * 40
    >>> v = collapse_watch.compare(varied, same, prompts=prompts, embeddings=False)
    >>> v.status, v.exit_code
    ('collapse_suspected', 1)
    >>> v.change("distinct_2").significant_decline, v.change("distinct_2").scale
    (True, 'difference')
    >>> collapse_watch.compare(varied, varied, prompts=prompts, embeddings=False).status
    'ok'
    """
    if candidate_prompts is None:
        candidate_prompts = prompts
    names = metric_list(metrics)
    seed = _check_int("seed", seed, 0)
    embed = embedder_for(embeddings)
    sides = [
        gate.score_side(
            str(value) if isinstance(value, str | os.PathLike) else name,  # a file named as the CLI names it
            _side(value, p, name),
            names,
            embed,
            seed,
        )
        for name, value, p in (("baseline", baseline, prompts), ("candidate", candidate, candidate_prompts))
    ]
    return verdict_of(gate.compare_sides(sides[0], sides[1], names, seed, embed))


class History:
    """The SQL history the collector writes (SQLite or PostgreSQL), migrated on open.

    ``record`` stores one version's outputs as a run, with the same identities and assessment as
    ``collapse-watch score --store``: `collapse-watch history`, the report, the SQL views and
    ``/metrics`` show it.

    >>> import collapse_watch, tempfile, os
    >>> db = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "history.db")
    >>> history = collapse_watch.History(db)
    >>> prompts = [f"Question {i}?" for i in range(8) for _ in range(3)]
    >>> r = history.record("bot", "v1", [f"Answer {i}.{j} x{i * j}" for i in range(8) for j in range(3)],
    ...                    prompts=prompts, embeddings=False)
    >>> r.version, r.verdict.status, r.vs_previous is None
    ('v1', 'ok', True)
    >>> r = history.record("bot", "v2", ["Same answer."] * 24, prompts=prompts, embeddings=False)
    >>> r.verdict.status, r.vs_previous.baseline
    ('collapse_suspected', 'v1')
    >>> history.versions("bot")
    ['v1', 'v2']
    >>> history.close()
    """

    def __init__(self, database_url: str | None = None) -> None:
        if database_url is not None and (not isinstance(database_url, str) or not database_url.strip()):
            raise TypeError(f"database_url: expected a SQLAlchemy URL string, got {database_url!r}")
        self.store = gate.open_history(database_url)  # a ValueError naming the (redacted) URL
        self.unclosed: dict[int, str] = {}  # run id -> why: runs a database fault kept from closing

    def record(
        self,
        model: str,
        version: str,
        outputs: Outputs,
        prompts: Sequence[str] | None = None,
        *,
        embeddings: Embeddings = True,
        seed: int = DEFAULT_SEED,
        max_scored_samples: int | None = None,
    ) -> Recorded:
        """Store ``outputs`` as a completed run of ``version`` of ``model`` and assess it against the
        model's baseline version (the first one, unless set) and the previous version.

        Every output is stored; at most ``max_scored_samples`` of them (default: the config's
        default ``max_scored_samples``) are scored, the uniform sample a collector scores of a run.

        A version is recorded once: a ``version`` the model already has a completed run of raises
        :class:`VersionExists` (a ``ValueError``) before anything is stored. When the database fails
        while the run is stored, the run is closed as failed (at the next call if the database
        refused even that) and the database's error propagates."""
        from collector.scored_subset import scored_samples
        from collector.scoring import score_batch
        from collector.store.cli_commands import sample_records

        check_label(model, "model")
        check_label(version, "version")
        records = sample_records(samples_of(outputs, prompts))
        seed = _check_int("seed", seed, 0)
        cap = (
            gate.default_max_scored_samples()
            if max_scored_samples is None
            else _check_int("max_scored_samples", max_scored_samples, 10)
        )
        self.close_unclosed()
        self.store.refuse_recorded(model, version)
        embed = embedder_for(embeddings, self.store)
        scored = scored_samples(records, cap)
        result = score_batch(version, scored, embed=embed, n_boot=DEFAULT_BOOTSTRAP, seed=seed).result
        begun: list[int] = []
        try:
            run_id = gate.record_run(
                self.store, (model, version), records, result, embed, source_kind="api", on_begun=begun.append
            )
        except Exception as exc:
            if begun:
                self._close_failed(begun[0], exc)
            raise
        compared: dict[str, BatchComparison] = {}
        verdict = gate.assess_recorded(
            self.store, model, embed, max_samples=cap, on_compared=compared.__setitem__
        )
        assert verdict is not None  # the run just stored is completed
        base = compared.get("baseline")
        prev = compared.get("previous")
        return Recorded(
            model=model,
            version=version,
            run_id=run_id,
            verdict=verdict_of(base) if base else bare_verdict(verdict, version, version),
            vs_previous=verdict_of(prev) if prev else None,
            scores=scores_of(result),
        )

    def recorded_run(self, model: str, version: str) -> int | None:
        """The id of the latest completed run of ``model``@``version``; None when it has none (a
        version whose runs all failed may be recorded again)."""
        if model not in self.store.model_names():
            return None
        return self.store.latest_completed_run(model, version)

    def _close_failed(self, run_id: int, exc: BaseException) -> None:
        """Close a run whose storing failed as 'failed'; kept for later if the database refuses."""
        from collector.store.errors import StoreError, first_line

        reason = f"recording failed: {first_line(exc)}"
        try:
            self.store.finish_run(run_id, "failed", reason)
        except StoreError:  # record_scored_file closed it already
            pass
        except Exception:  # the database is still away: closed at the next call
            self.unclosed[run_id] = reason

    def close_unclosed(self) -> None:
        """Close the runs a database fault left 'running' as 'failed' (tried again at each call)."""
        from collector.store.errors import StoreError

        for run_id, reason in list(self.unclosed.items()):
            with contextlib.suppress(StoreError):
                self.store.finish_run(run_id, "failed", reason)
            self.unclosed.pop(run_id)

    def versions(self, model: str) -> list[str]:
        """The model's version labels, oldest first (empty for an unknown model)."""
        return (
            [label for label, _ in self.store.version_order(model)]
            if model in self.store.model_names()
            else []
        )

    def close(self) -> None:
        """Close what a database fault left running (if the database answers now), and release the
        database connections."""
        try:
            self.close_unclosed()
        except Exception as exc:
            import logging

            logging.getLogger("collapse_watch").warning(
                "collapse-watch: run(s) %s stay 'running' (the database still refuses to close them: %s); "
                "a later recording or collector start marks them interrupted once they are stale",
                sorted(self.unclosed),
                exc,
            )
        self.store.engine.dispose()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "EXIT_CODES",
    "History",
    "MetricChange",
    "MetricScore",
    "Recorded",
    "Scores",
    "Verdict",
    "VersionExists",
    "compare",
    "score",
]
