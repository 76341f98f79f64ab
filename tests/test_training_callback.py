"""``CollapseWatchCallback`` in real ``Trainer`` runs of a tiny Llama built here from a config
(random weights, a word-level tokenizer with a chat template; no download): it records versions in
the SQL history, logs ``collapse_watch/...`` to the reporters, writes the verdict beside each
checkpoint, and stops a run that collapses (trained on one repeated answer) but not a healthy one."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from collapse_watch.integrations.transformers import CollapseWatchCallback
from collector.store import Store
from collector.training.watch import VERDICT_FILE
from tests import tiny_lm


class Reporter(TrainerCallback):
    """Stands where TensorBoard/W&B/MLflow stand: before the user's callbacks; keeps what it got."""

    def __init__(self) -> None:
        self.logged: list[dict[str, Any]] = []

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        self.logged.append(dict(logs or {}))


def watched_run(
    tmp_path: Path,
    data: list[dict[str, Any]],
    *,
    lr: float,
    steps: int | None = 60,
    epochs: float = 1.0,
    every_steps: int | None = 10,
    stop_on: str | None = "collapse_suspected",
    db: str | None = None,
    save_steps: int = 20,
    accumulation: int = 1,
    bf16: bool = False,
    tokenizer_to_trainer: bool = False,
    model: Any = None,
    extra: list[TrainerCallback] | None = None,
    resume: str | None = None,
    args_run_name: str | None = None,
    made: Any = None,
    **watch: Any,
) -> tuple[CollapseWatchCallback, Trainer, Reporter]:
    tok = tiny_lm.tokenizer()
    callback = CollapseWatchCallback(
        model_name="tiny",
        probes=tiny_lm.PROBES,
        tokenizer=None if tokenizer_to_trainer else tok,
        database_url=db or f"sqlite:///{tmp_path / 'history.db'}",
        every_steps=every_steps,
        samples_per_prompt=4,
        max_new_tokens=16,
        stop_on=stop_on,  # type: ignore[arg-type]
        embeddings=False,
        **watch,
    )
    if made is not None:
        made(callback)
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=steps if steps is not None else -1,
        num_train_epochs=epochs,
        per_device_train_batch_size=8 // accumulation,
        gradient_accumulation_steps=accumulation,
        learning_rate=lr,
        logging_steps=5,
        save_steps=save_steps,
        bf16=bf16,
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
        run_name=args_run_name,
    )
    reporter = Reporter()
    trainer = Trainer(
        model=model if model is not None else tiny_lm.model(tok),
        args=args,
        train_dataset=data,
        processing_class=tok if tokenizer_to_trainer else None,
        callbacks=[reporter, callback, *(extra or [])],
    )
    trainer.train(resume_from_checkpoint=resume)
    return callback, trainer, reporter


@pytest.mark.slow
def test_a_collapsing_fine_tune_is_stopped_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tok = tiny_lm.tokenizer()
    with caplog.at_level(logging.WARNING, logger="collapse_watch"):
        callback, trainer, reporter = watched_run(tmp_path, tiny_lm.collapsing_data(tok), lr=1e-2)
    statuses = [(c.step, c.verdict.status) for c in callback.checks]
    assert statuses[0] == (0, "ok")
    assert statuses[-1][1] == "collapse_suspected"
    stopped_at = statuses[-1][0]
    assert trainer.state.global_step == stopped_at < 60  # stopped at the check, long before max_steps
    assert callback.stop_reason and f"stopped training at step {stopped_at}" in callback.stop_reason
    assert callback.stop_reason in caplog.text
    assert "distinct" in callback.stop_reason  # the reasons name the declined metrics
    # the history holds every check as a version, with the verdict the callback acted on
    store = Store(f"sqlite:///{tmp_path / 'history.db'}")
    run_name = callback.watch.run
    assert run_name and callback.summary()["run"] == run_name  # the UTC start time by default
    assert [label for label, _ in store.version_order("tiny")] == [
        f"{run_name}/step-{s}" for s, _ in statuses
    ]
    run = store.latest_completed_run("tiny", f"{run_name}/step-{stopped_at}")
    assert store.verdict_of(run).status == "collapse_suspected"  # type: ignore[arg-type, union-attr]
    # the reporters, which run before user callbacks, received the values
    got = [entry for entry in reporter.logged if "collapse_watch/verdict_collapse_suspected" in entry]
    assert got and got[-1]["collapse_watch/verdict_collapse_suspected"] == 1.0
    assert got[0]["collapse_watch/verdict_ok"] == 1.0  # the baseline's check reaches the first log
    assert got[-1]["collapse_watch/distinct_2_within"] < got[0]["collapse_watch/distinct_2_within"]
    assert any("collapse_watch/verdict_collapse_suspected" in h for h in trainer.state.log_history)


@pytest.mark.slow
def test_a_healthy_fine_tune_runs_to_the_end_with_a_verdict_beside_each_checkpoint(tmp_path: Path) -> None:
    tok = tiny_lm.tokenizer()
    callback, trainer, _ = watched_run(
        tmp_path, tiny_lm.varied_data(tok), lr=1e-2, steps=40, run_name="healthy"
    )
    assert trainer.state.global_step == 40 and callback.stop_reason is None
    assert [c.step for c in callback.checks] == [0, 10, 20, 30, 40]
    assert not any(c.verdict.status == "collapse_suspected" for c in callback.checks)
    status = {c.step: c.verdict.status for c in callback.checks}
    for step in (20, 40):
        doc = json.loads((tmp_path / "out" / f"checkpoint-{step}" / VERDICT_FILE).read_text())
        assert (doc["step"], doc["version"], doc["status"]) == (step, f"healthy/step-{step}", status[step])
        assert doc["run"] == "healthy"
        assert (
            doc["vs_baseline"]["baseline"] == "healthy/step-0"
            and doc["vs_previous"]["baseline"] == f"healthy/step-{step - 10}"
        )
        assert {c["metric"] for c in doc["vs_baseline"]["changes"]} >= {"distinct_2", "self_bleu"}
    summary = callback.summary()
    assert 0 < summary["time_share"] < 1 and summary["check_seconds"] > 0


@pytest.mark.slow
def test_checks_sample_the_same_outputs_when_training_changes_nothing(tmp_path: Path) -> None:
    """Fixed seeds, the training RNG untouched, and mixed precision (which wraps ``forward`` after the
    first check) left out of sampling: with a zero learning rate every check is the baseline again."""
    tok = tiny_lm.tokenizer()
    model = tiny_lm.model(tok)
    sampled_in: list[Any] = []  # the dtype of the logits of every forward pass made in eval mode
    model.lm_head.register_forward_hook(
        lambda module, _inp, out: None if module.training else sampled_in.append(out.dtype)
    )
    callback, _, _ = watched_run(
        tmp_path,
        tiny_lm.varied_data(tok),
        lr=0.0,
        steps=4,
        every_steps=2,
        bf16=True,
        stop_on="watch",
        model=model,
    )
    assert hasattr(model, "_original_forward")  # the trainer did wrap forward in bf16 autocast
    assert set(sampled_in) == {torch.float32}
    store = Store(f"sqlite:///{tmp_path / 'history.db'}")
    outputs = [[s.output for s in store.run_samples(c.recorded.run_id)] for c in callback.checks]
    assert len(outputs) == 3 and outputs[1] == outputs[0] and outputs[2] == outputs[0]
    assert [c.verdict.status for c in callback.checks] == ["ok", "ok", "ok"]


@pytest.mark.slow
def test_gradient_accumulation_and_epochs_count_optimizer_steps(tmp_path: Path) -> None:
    tok = tiny_lm.tokenizer()
    # 64 examples, batches of 4 accumulated twice: 8 optimizer steps an epoch, 2 epochs
    callback, trainer, _ = watched_run(
        tmp_path,
        tiny_lm.varied_data(tok),
        lr=1e-3,
        steps=None,
        epochs=2,
        every_steps=5,
        accumulation=2,
        save_steps=100,
        tokenizer_to_trainer=True,  # the callback takes the trainer's tokenizer
    )
    assert trainer.state.global_step == 16
    assert [c.step for c in callback.checks] == [0, 5, 10, 15, 16]  # and the last step


def test_the_time_bound_skips_checks_but_never_the_last(tmp_path: Path) -> None:
    tok = tiny_lm.tokenizer()
    callback, _, _ = watched_run(
        tmp_path, tiny_lm.varied_data(tok), lr=1e-3, steps=20, every_steps=2, max_time_share=0.05
    )
    steps = [c.step for c in callback.checks]
    assert steps[0] == 0 and steps[-1] == 20
    assert (
        callback.summary()["skipped_steps"] and len(steps) < 11
    )  # a tiny model trains faster than it is probed


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"probes": ["only one prompt"]}, "probes: 1 probes: a comparison needs at least 6"),
        ({"probes": [*tiny_lm.PROBES[:-1], "a\x00b"]}, "probes: probe 9 holds NUL \\u0000 at index 1"),
        (
            {"probes": [*tiny_lm.PROBES[:-1], "a \ud800"]},
            "probes: probe 9 holds a lone surrogate \\ud800 at index 2",
        ),
        ({"every_steps": "20"}, "every_steps: Input should be a valid integer"),
        ({"every_steps": True}, "every_steps: Input should be a valid integer"),
        ({"samples_per_prompt": 0}, "samples_per_prompt: Input should be greater than or equal to 2"),
        ({"samples_per_prompt": 4.0}, "samples_per_prompt: Input should be a valid integer"),
        ({"max_new_tokens": -1}, "max_new_tokens: Input should be greater than or equal to 1"),
        ({"temperature": True}, "temperature: Input should be a valid number"),
        ({"model_name": "   "}, "model_name: must not be empty or only spaces"),
        ({"model_name": "m" * 201}, "model_name: 201 characters, at most 200"),
        ({"model_name": "bot\x00"}, "model_name holds the control or bidi character U+0000 at character 4"),
        ({"model_name": "bot\ud800"}, "model_name: lone surrogate \\ud800 at index 3"),
        ({"run_name": "r\n1"}, "run_name holds the control or bidi character U+000A at character 2"),
        ({"run_name": "R" * 199}, "run_name: 200 characters leave no room for 'step-N'"),
        ({"model_name": " bot"}, "model_name: must not begin or end with spaces"),
        ({"model_name": "bot\u200b"}, "model_name holds the invisible character U+200B at character 4"),
        ({"run_name": "r", "version_prefix": "p-"}, "give run_name or version_prefix, not both"),
        ({"probes": "/no/such/probes.txt"}, "is not a probes file"),
        ({"every_steps": 0}, "every_steps: Input should be greater than or equal to 1"),
        ({"samples_per_prompt": 1}, "samples_per_prompt: Input should be greater than or equal to 2"),
        ({"stop_on": "collapse"}, "stop_on: Input should be 'collapse_suspected' or 'watch'"),
        ({"max_time_share": 1.5}, "max_time_share: Input should be less than or equal to 1"),
        ({"model_name": ""}, "model_name: must not be empty or only spaces"),
        ({"tokenizer": "gpt2"}, "tokenizer: expected a Hugging Face tokenizer"),
    ],
)
def test_bad_arguments_are_named(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "model_name": "tiny",
        "probes": tiny_lm.PROBES,
        "database_url": f"sqlite:///{tmp_path / 'h.db'}",
        **kwargs,
    }
    with pytest.raises(ValueError) as info:
        CollapseWatchCallback(**args)
    assert message in str(info.value)


def test_a_name_that_is_no_string_is_a_type_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="CollapseWatch: model_name: expected a string, got int"):
        CollapseWatchCallback(7, tiny_lm.PROBES, database_url=f"sqlite:///{tmp_path / 'h.db'}")  # type: ignore[arg-type]


def test_probes_come_from_a_file_and_a_trainer_without_tokenizer_is_an_error(tmp_path: Path) -> None:
    probes = tmp_path / "probes.txt"
    probes.write_text("\n".join(tiny_lm.PROBES) + "\n", encoding="utf-8")
    callback = CollapseWatchCallback("tiny", probes, database_url=f"sqlite:///{tmp_path / 'h.db'}")
    assert callback.watch.opts.probes == tiny_lm.PROBES
    tok = tiny_lm.tokenizer()
    trainer = Trainer(
        model=tiny_lm.model(tok),
        args=TrainingArguments(output_dir=str(tmp_path / "o"), max_steps=1, report_to=[], use_cpu=True),
        train_dataset=tiny_lm.varied_data(tok, n=8),
        callbacks=[callback],
    )
    with pytest.raises(ValueError, match="no tokenizer: pass tokenizer="):
        trainer.train()


@pytest.mark.slow
def test_trl_sft_trainer_takes_the_callback(tmp_path: Path) -> None:
    trl = pytest.importorskip("trl")
    from datasets import Dataset

    tok = tiny_lm.tokenizer()
    rows = [
        {
            "messages": [
                {"role": "user", "content": p},
                {"role": "assistant", "content": tiny_lm.COLLAPSED_ANSWER},
            ]
        }
        for p in tiny_lm.PROBES * 6
    ]
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'user' %}<|user|> {{ m['content'] }} "
        "{% else %}<|assistant|> {{ m['content'] }} <eos> {% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|> {% endif %}"
    )
    callback = CollapseWatchCallback(
        model_name="tiny-sft",
        probes=tiny_lm.PROBES,
        database_url=f"sqlite:///{tmp_path / 'h.db'}",
        every_steps=10,
        max_new_tokens=16,
        stop_on="collapse_suspected",
        embeddings=False,
    )
    config = trl.SFTConfig(
        output_dir=str(tmp_path / "sft"),
        max_steps=60,
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        logging_steps=5,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        max_length=32,
        disable_tqdm=True,
    )
    trainer = trl.SFTTrainer(
        model=tiny_lm.model(tok),
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        callbacks=[callback],
    )
    trainer.train()
    assert callback.checks[0].verdict.status == "ok"
    assert callback.checks[-1].verdict.status == "collapse_suspected"
    assert trainer.state.global_step < 60


# ---------------------------------------------------------------- run identity and resuming


def history_runs(db: str, model: str) -> list[tuple[str, str]]:
    """``(version, status)`` of every run of ``model``, oldest first."""
    from sqlalchemy import select

    from collector.store import models as m

    store = Store(db)
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(m.ModelVersion.label, m.Run.status)
            .join(m.Run, m.Run.version_id == m.ModelVersion.id)
            .join(m.Model, m.Model.id == m.Run.model_id)
            .where(m.Model.name == model)
            .order_by(m.Run.id)
        ).all()
    store.engine.dispose()
    return [(r[0], r[1]) for r in rows]


def test_two_training_runs_of_one_model_never_share_a_version(tmp_path: Path) -> None:
    tok = tiny_lm.tokenizer()
    db = f"sqlite:///{tmp_path / 'history.db'}"
    data = tiny_lm.varied_data(tok, n=16)
    first, _, _ = watched_run(tmp_path / "a", data, lr=1e-3, steps=4, every_steps=2, db=db, stop_on=None)
    second, _, _ = watched_run(tmp_path / "b", data, lr=1e-3, steps=4, every_steps=2, db=db, stop_on=None)
    # both default to the UTC start time; a second run in the same second is renamed, never mixed
    assert first.watch.run != second.watch.run
    runs = history_runs(db, "tiny")
    assert [v for v, _ in runs] == [f"{c.watch.run}/step-{s}" for c in (first, second) for s in (0, 2, 4)]
    assert len({v for v, _ in runs}) == 6 and {s for _, s in runs} == {"succeeded"}
    # the trainer's run name is the default; a run name the user gave twice is refused before training
    named, _, _ = watched_run(
        tmp_path / "c", data, lr=1e-3, steps=2, every_steps=2, db=db, stop_on=None, args_run_name="sft-1"
    )
    assert named.watch.run == "sft-1"
    with pytest.raises(
        ValueError, match=r"tiny already has versions of the run 'sft-1/' .*give another run_name"
    ):
        watched_run(tmp_path / "d", data, lr=1e-3, steps=2, every_steps=2, db=db, run_name="sft-1")
    assert len(history_runs(db, "tiny")) == 8  # nothing of the refused run was stored
    # the trainer's run name is no promise of a new run: taken, it becomes name-2
    again, _, _ = watched_run(
        tmp_path / "e", data, lr=1e-3, steps=2, every_steps=2, db=db, stop_on=None, args_run_name="sft-1"
    )
    assert again.watch.run == "sft-1-2"
    assert [v for v, _ in history_runs(db, "tiny")][-2:] == ["sft-1-2/step-0", "sft-1-2/step-2"]


def test_a_resumed_run_keeps_its_name_and_skips_the_steps_it_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tok = tiny_lm.tokenizer()
    db = f"sqlite:///{tmp_path / 'history.db'}"
    data = tiny_lm.varied_data(tok, n=16)
    common: dict[str, Any] = {"lr": 1e-3, "steps": 20, "every_steps": 10, "save_steps": 10, "db": db}
    first, _, _ = watched_run(tmp_path, data, stop_on=None, **common)
    name = first.watch.run
    state = json.loads((tmp_path / "out" / "checkpoint-10" / "trainer_state.json").read_text())
    assert any(entry.get("collapse_watch/run") == f"{name}/" for entry in state["log_history"])
    with caplog.at_level(logging.INFO, logger="collapse_watch"):
        resumed, trainer, _ = watched_run(
            tmp_path, data, stop_on=None, resume=str(tmp_path / "out" / "checkpoint-10"), **common
        )
    assert trainer.state.global_step == 20 and resumed.watch.run == name  # the same run
    assert resumed.summary()["recorded_before_steps"] == [10, 20] and resumed.checks == []
    assert f"tiny@{name}/step-10 is in the history already" in caplog.text
    assert history_runs(db, "tiny") == [(f"{name}/step-{s}", "succeeded") for s in (0, 10, 20)]


# ---------------------------------------------------------------- database faults


class AtSteps(TrainerCallback):
    """Runs an action at the end of given optimizer steps (after the watch's own step end)."""

    def __init__(self, actions: dict[int, Any]) -> None:
        self.actions = actions

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step in self.actions:
            self.actions[state.global_step]()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_an_unreachable_postgresql_skips_a_check_and_training_goes_on(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The link to PostgreSQL is cut while the check at step 4 stores its samples (a real TCP cut,
    tests/tcp_proxy.py) and restored two steps later: that check is skipped with one warning, its
    run is closed as failed at the next check, and training runs to the end."""
    from sqlalchemy import event

    from tests.tcp_proxy import TcpProxy

    proxy = TcpProxy(5432)
    via_proxy = db_url.replace(":5432/", f":{proxy.port}/")
    tok = tiny_lm.tokenizer()
    armed: list[int] = []
    cut: list[int] = []

    def cut_while_storing(callback: CollapseWatchCallback) -> None:
        @event.listens_for(callback.watch.history.store.engine, "before_cursor_execute")
        def _cut(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
            if armed and not cut and "INSERT INTO samples" in statement:
                cut.append(1)
                proxy.cut()

    try:
        with caplog.at_level(logging.WARNING, logger="collapse_watch"):
            callback, trainer, _ = watched_run(
                tmp_path,
                tiny_lm.varied_data(tok, n=16),
                lr=1e-3,
                steps=8,
                every_steps=2,
                db=via_proxy,
                stop_on=None,
                run_name="pg",
                made=cut_while_storing,
                # after the watch's check at step 2: the next check (step 4) loses the link
                extra=[AtSteps({2: lambda: armed.append(1), 5: proxy.restore})],
            )
    finally:
        proxy.close()
    assert cut and trainer.state.global_step == 8
    assert [c.step for c in callback.checks] == [0, 2, 6, 8] and callback.summary()["failed_steps"] == [4]
    warnings = [r.getMessage() for r in caplog.records if "history database failed" in r.getMessage()]
    assert len(warnings) == 1 and "tiny@pg/step-4 at step 4 skipped" in warnings[0]
    runs = history_runs(db_url, "tiny")
    assert ("pg/step-4", "failed") in runs and "running" not in {s for _, s in runs}
    assert [v for v, s in runs if s == "succeeded"] == [f"pg/step-{s}" for s in (0, 2, 6, 8)]


@pytest.mark.slow
def test_a_locked_sqlite_history_skips_a_check_and_training_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another connection holds SQLite's write lock over the check at step 2 (past the store's busy
    timeout): that check is skipped with one warning and nothing half-stored; the next one records."""
    import sqlite3

    path = tmp_path / "history.db"
    tok = tiny_lm.tokenizer()
    holder: list[sqlite3.Connection] = []

    def lock() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        holder.append(conn)

    def unlock() -> None:
        holder.pop().execute("ROLLBACK")

    with caplog.at_level(logging.WARNING, logger="collapse_watch"):
        callback, trainer, _ = watched_run(
            tmp_path,
            tiny_lm.varied_data(tok, n=16),
            lr=1e-3,
            steps=4,
            every_steps=2,
            db=f"sqlite:///{path}",
            stop_on="watch",
            run_name="locked",
            extra=[AtSteps({1: lock, 3: unlock})],
        )
    assert trainer.state.global_step == 4 and [c.step for c in callback.checks] == [0, 4]
    warnings = [r.getMessage() for r in caplog.records if "history database failed" in r.getMessage()]
    assert len(warnings) == 1 and "database is locked" in warnings[0]
    runs = history_runs(f"sqlite:///{path}", "tiny")
    assert [v for v, _ in runs] == ["locked/step-0", "locked/step-4"]
    assert {s for _, s in runs} == {"succeeded"}


# ---------------------------------------------------------------- invalid text from the tokenizer


def test_lone_surrogates_a_tokenizer_decodes_are_stored_as_replacement_characters(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tok = tiny_lm.tokenizer()
    decode = tok.batch_decode
    tok.batch_decode = lambda *a, **k: [f"{t} \ud800" for t in decode(*a, **k)]  # as a broken decode gives
    with caplog.at_level(logging.WARNING, logger="collapse_watch"):
        callback = CollapseWatchCallback(
            "tiny",
            tiny_lm.PROBES,
            tokenizer=tok,
            database_url=f"sqlite:///{tmp_path / 'h.db'}",
            max_new_tokens=4,
            embeddings=False,
            run_name="s",
        )
        check = callback.watch.check(tiny_lm.model(tok), tok, 0)
    assert check is not None and check.verdict.status == "ok"
    outputs = [s.output for s in callback.watch.history.store.run_samples(check.recorded.run_id)]
    assert len(outputs) == 40 and all(o.endswith(" \ufffd") for o in outputs)
    assert "hold 40 lone surrogate(s)" in caplog.text


# ---------------------------------------------------------------- distributed training


@pytest.mark.slow
def test_in_ddp_process_zero_records_and_every_rank_stops_at_the_same_step(tmp_path: Path) -> None:
    """Two CPU processes (gloo) fine-tune the tiny Llama under torch.distributed.run: only rank 0
    samples and records, and rank 1 takes its stop decision, so neither waits for the other."""
    import os
    import subprocess
    import sys

    db = f"sqlite:///{tmp_path / 'history.db'}"
    root = Path(__file__).resolve().parent.parent
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.run(
        [*launch, str(root / "tests" / "ddp_watch.py"), str(tmp_path), db],
        env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    zero, one = (json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1))
    assert zero["world_size"] == one["world_size"] == 2
    assert zero["checks"][0] == [0, "ok"] and zero["checks"][-1][1] == "collapse_suspected"
    stopped_at = zero["checks"][-1][0]
    assert zero["global_step"] == one["global_step"] == stopped_at < 60  # the same stop on both ranks
    assert one["checks"] == [] and not one["opened_history"]  # rank 1 neither sampled nor stored
    assert "process zero" in one["stop_reason"] and "stopped training at step" in zero["stop_reason"]
    runs = history_runs(db, "tiny-ddp")
    assert [v for v, _ in runs] == [f"ddp/step-{s}" for s, _ in zero["checks"]]  # each check once
