"""SQLAlchemy 2.x declarative models: the history schema (documented in docs/sql.md)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
BigId = BigInteger().with_variant(Integer, "sqlite")  # SQLite only autoincrements INTEGER PRIMARY KEY


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Model(Base):
    """A deployed model or endpoint being watched."""

    __tablename__ = "models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # model_versions.id of the baseline (NULL: the first version). No FK: it would make the two tables
    # mutually dependent, which SQLite cannot add after the fact; set_baseline() checks it.
    baseline_version_id: Mapped[int | None] = mapped_column(Integer)


class ModelVersion(Base):
    """A version of a model, ordered by ``ordinal`` (1 = first seen)."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "label"),
        UniqueConstraint("model_id", "ordinal", name="uq_model_versions_model_ordinal"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(200))
    ordinal: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(40))
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Prompt(Base):
    """A probe prompt body, stored once per distinct text (sha256 of its UTF-8 bytes)."""

    __tablename__ = "prompts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    body: Mapped[str] = mapped_column(Text)


class ProbeSet(Base):
    """A fixed prompt set; its hash covers the ordered (key, prompt) pairs, so a change is a new row."""

    __tablename__ = "probe_sets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ProbeSetPrompt(Base):
    """Membership of a prompt in a probe set, under the set's own prompt key."""

    __tablename__ = "probe_set_prompts"
    probe_set_id: Mapped[int] = mapped_column(
        ForeignKey("probe_sets.id", ondelete="CASCADE"), primary_key=True
    )
    prompt_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)


class TextBody(Base):
    """An output body stored once per distinct text; ``body`` is NULL once retention pruned it."""

    __tablename__ = "texts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    n_bytes: Mapped[int] = mapped_column(Integer)
    body: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)  # exact bytes when body is not valid text


class Run(Base):
    """One collection or scoring run; complete only once ``finish_run`` committed its status."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('running','succeeded','partial','failed','interrupted','no_data')", name="status"
        ),
        Index("ix_runs_model_started", "model_id", "started_at"),
        Index("ix_runs_status_started", "status", "started_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    probe_set_id: Mapped[int | None] = mapped_column(ForeignKey("probe_sets.id"))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    n_samples: Mapped[int] = mapped_column(Integer, default=0)
    n_errors: Mapped[int] = mapped_column(Integer, default=0)
    config_hash: Mapped[str | None] = mapped_column(String(64))
    source_kind: Mapped[str] = mapped_column(String(40))
    # migration 0003 (issue #11): who runs it, blank outputs and lines set aside
    owner: Mapped[str | None] = mapped_column(String(200))  # host:pid:process-start (collector.owner)
    n_blank: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_quarantined: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # migration 0010 (issue #13): what embedded its outputs; NULL = no embedding metrics, or scored
    # before the embedder was recorded
    embedding_identity_id: Mapped[int | None] = mapped_column(ForeignKey("embedding_identities.id"))


class SampleRow(Base):
    """One model call: its prompt, output (by text id), decoding parameters, timing and error."""

    __tablename__ = "samples"
    __table_args__ = (
        UniqueConstraint("run_id", "prompt_id", "sample_index", name="uq_samples_run_prompt_index"),
        Index("ix_samples_created_at", "created_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    prompt_key: Mapped[str] = mapped_column(String(200))  # the source's prompt id (per-prompt values use it)
    text_id: Mapped[int | None] = mapped_column(ForeignKey("texts.id"), index=True)
    sample_index: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    decoding: Mapped[dict | None] = mapped_column(JSON)
    latency_seconds: Mapped[float | None] = mapped_column(Float)
    finish_reason: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(Text)


class MetricValueRow(Base):
    """A metric in one scope for one run; kept forever (retention never touches it)."""

    __tablename__ = "metric_values"
    __table_args__ = (
        UniqueConstraint("run_id", "metric", "scope", name="uq_metric_values_run_metric_scope"),
        CheckConstraint("scope IN ('within','across')", name="scope"),
        Index("ix_metric_values_version_metric", "version_id", "metric", "scope"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    metric: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(10))
    value: Mapped[float | None] = mapped_column(Float)  # NULL stands for NaN (unscorable)
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    n_samples: Mapped[int] = mapped_column(Integer)
    n_prompts: Mapped[int] = mapped_column(Integer)
    family: Mapped[str] = mapped_column(String(20))
    higher_is_diverse: Mapped[bool] = mapped_column(Boolean)


class PromptMetricValue(Base):
    """The ``within`` value of one metric for one prompt of a run (what comparisons pair on)."""

    __tablename__ = "prompt_metric_values"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    metric: Mapped[str] = mapped_column(String(100), primary_key=True)
    prompt_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)


# -- assessments (migration 0002): comparisons, verdicts and trends computed from the runs above ----
class ComparisonRow(Base):
    """One metric × scope of a candidate run compared with a reference run (baseline or previous)."""

    __tablename__ = "comparisons"
    __table_args__ = (
        UniqueConstraint(
            "run_id", "reference", "metric", "scope", name="uq_comparisons_run_reference_metric_scope"
        ),
        CheckConstraint("reference IN ('baseline','previous')", name="reference"),
        CheckConstraint("scope IN ('within','across')", name="scope"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))  # the candidate run
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    reference: Mapped[str] = mapped_column(String(10))
    reference_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    reference_run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    metric: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(10))
    rel_change: Mapped[float | None] = mapped_column(Float)  # the metric's own orientation; NULL = NaN
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    diversity_change: Mapped[float | None] = mapped_column(Float)  # negative = less diverse
    diversity_ci_low: Mapped[float | None] = mapped_column(Float)
    diversity_ci_high: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    n_pairs: Mapped[int] = mapped_column(Integer)
    significant_decline: Mapped[bool] = mapped_column(Boolean)
    # migration 0012 (issue #21): the change in ``vocabulary.CHANGE_UNIT`` (the metric's scale,
    # negative = less diverse), what /metrics exports; NULL = NaN, or not backfilled (see 0012)
    change: Mapped[float | None] = mapped_column(Float)
    change_ci_low: Mapped[float | None] = mapped_column(Float)
    change_ci_high: Mapped[float | None] = mapped_column(Float)


class VerdictRow(Base):
    """The verdict of one candidate run (vs the model's baseline), with its reasons in words."""

    __tablename__ = "verdicts"
    __table_args__ = (
        CheckConstraint("status IN ('ok','watch','collapse_suspected','inconclusive')", name="status"),
    )
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    reasons: Mapped[list] = mapped_column(JSON)
    details: Mapped[dict] = mapped_column(JSON)
    baseline_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PromptFindingRow(Base):
    """One headline metric on one prompt of a candidate run vs the baseline run (migration 0011):
    both values, the change, the permutation p-value, its Benjamini-Hochberg adjustment across the
    run's prompts, and whether the prompt counted as collapsed.  Replaced with the run's verdict."""

    __tablename__ = "prompt_findings"
    __table_args__ = (
        UniqueConstraint("run_id", "prompt_key", "metric", name="uq_prompt_findings_run_prompt_metric"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))  # the candidate run
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    reference_run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    prompt_key: Mapped[str] = mapped_column(String(200))
    prompt_id: Mapped[int | None] = mapped_column(ForeignKey("prompts.id"))  # the body, when stored
    metric: Mapped[str] = mapped_column(String(100))
    baseline_value: Mapped[float | None] = mapped_column(Float)
    candidate_value: Mapped[float | None] = mapped_column(Float)
    change: Mapped[float | None] = mapped_column(Float)  # the metric's scale: difference or ratio − 1
    p_value: Mapped[float | None] = mapped_column(Float)
    adjusted_p: Mapped[float | None] = mapped_column(Float)
    collapsed: Mapped[bool] = mapped_column(Boolean)  # the prompt (every headline metric) collapsed


class TrendTable(Base):
    """The latest trend of one metric × scope over a model's last K versions (replaced each time)."""

    __tablename__ = "trends"
    __table_args__ = (UniqueConstraint("model_id", "metric", "scope", name="uq_trends_model_metric_scope"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(10))
    slope: Mapped[float | None] = mapped_column(Float)  # relative per version step, negative = less diverse
    slope_ci_low: Mapped[float | None] = mapped_column(Float)
    slope_ci_high: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    n_versions: Mapped[int] = mapped_column(Integer)
    last_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CollectionLease(Base):
    """Which scheduled tick of a model was claimed last, and by which replica (docs/replicas.md).

    One row per model name. A replica collects tick T of a model only if it holds the model's
    PostgreSQL advisory lock and moves ``last_tick`` forward to T, so each tick is collected once.
    """

    __tablename__ = "collection_leases"
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_tick: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    holder: Mapped[str] = mapped_column(String(200))  # host:pid of the replica that claimed it
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # NULL while running


# -- reliability (migration 0003): pull positions, delivered source keys, quarantined lines ---------


class PullOffset(Base):
    """Where a pull source (one model's jsonl/sql source) has read to; advanced with its samples."""

    __tablename__ = "pull_offsets"
    source: Mapped[str] = mapped_column(String(300), primary_key=True)
    position: Mapped[dict] = mapped_column(JSON)  # the source's own cursor (file offsets / watermark)
    generation: Mapped[int] = mapped_column(Integer)  # bumped on each advance (compare-and-set)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SourceRecord(Base):
    """Every record a pull source delivered, once: the key that makes a line impossible to store twice."""

    __tablename__ = "source_records"
    source: Mapped[str] = mapped_column(String(300), primary_key=True)
    source_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), index=True)
    quarantined: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class QuarantineRow(Base):
    """A record that could not be stored as a sample, with where it came from and why."""

    __tablename__ = "quarantine"
    __table_args__ = (Index("ix_quarantine_model_created", "model", "created_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(300))
    source_key: Mapped[str | None] = mapped_column(String(200))
    location: Mapped[str] = mapped_column(Text)  # file:line, or the SQL row's watermark
    reason: Mapped[str] = mapped_column(Text)
    excerpt: Mapped[str | None] = mapped_column(Text)  # the first 200 characters, made safe
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# -- alert history (migration 0005): every Alertmanager notification the collector received ---------
class AlertNotification(Base):
    """One alert of one Alertmanager webhook notification (firing or resolved), as received."""

    __tablename__ = "alert_notifications"
    __table_args__ = (
        CheckConstraint("status IN ('firing','resolved')", name="status"),
        Index("ix_alert_notifications_model_received", "model", "received_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    receiver: Mapped[str] = mapped_column(String(200))
    group_key: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10))  # this alert's status in the notification
    alertname: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str | None] = mapped_column(String(40))
    model: Mapped[str | None] = mapped_column(String(200))  # the alert's model label (NULL: none)
    version: Mapped[str | None] = mapped_column(String(200))
    fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    summary: Mapped[str | None] = mapped_column(Text)
    labels: Mapped[dict] = mapped_column(JSON)
    annotations: Mapped[dict] = mapped_column(JSON)


# -- stored embeddings (migration 0010): one vector per distinct text and embedder -------------------
class EmbeddingIdentityRow(Base):
    """What produced a set of vectors (``collector.embeddings.EmbeddingIdentity``); ``label`` is
    ``backend:model:dimension:l2|raw``. Vectors of two identities are never compared."""

    __tablename__ = "embedding_identities"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(400), unique=True)
    backend: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(300))
    dimension: Mapped[int] = mapped_column(Integer)
    normalised: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EmbeddingVector(Base):
    """The embedding of one distinct text (by the SHA-256 of its UTF-8 bytes, as ``texts.sha256``)
    under one identity, as little-endian float16: 2 bytes a dimension (768 B for MiniLM)."""

    __tablename__ = "embedding_vectors"
    identity_id: Mapped[int] = mapped_column(
        ForeignKey("embedding_identities.id", ondelete="CASCADE"), primary_key=True
    )
    text_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
