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
    )
    reporter = Reporter()
    trainer = Trainer(
        model=model if model is not None else tiny_lm.model(tok),
        args=args,
        train_dataset=data,
        processing_class=tok if tokenizer_to_trainer else None,
        callbacks=[reporter, callback],
    )
    trainer.train()
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
    assert [label for label, _ in store.version_order("tiny")] == [f"step-{s}" for s, _ in statuses]
    run = store.latest_completed_run("tiny", f"step-{stopped_at}")
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
    callback, trainer, _ = watched_run(tmp_path, tiny_lm.varied_data(tok), lr=1e-2, steps=40)
    assert trainer.state.global_step == 40 and callback.stop_reason is None
    assert [c.step for c in callback.checks] == [0, 10, 20, 30, 40]
    assert not any(c.verdict.status == "collapse_suspected" for c in callback.checks)
    status = {c.step: c.verdict.status for c in callback.checks}
    for step in (20, 40):
        doc = json.loads((tmp_path / "out" / f"checkpoint-{step}" / VERDICT_FILE).read_text())
        assert (doc["step"], doc["version"], doc["status"]) == (step, f"step-{step}", status[step])
        assert (
            doc["vs_baseline"]["baseline"] == "step-0"
            and doc["vs_previous"]["baseline"] == f"step-{step - 10}"
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
        ({"probes": ["only one prompt"]}, "probes: Value error, 1 probes: a comparison needs at least 6"),
        ({"probes": "/no/such/probes.txt"}, "is not a probes file"),
        ({"every_steps": 0}, "every_steps: Input should be greater than or equal to 1"),
        ({"samples_per_prompt": 1}, "samples_per_prompt: Input should be greater than or equal to 2"),
        ({"stop_on": "collapse"}, "stop_on: Input should be 'collapse_suspected' or 'watch'"),
        ({"max_time_share": 1.5}, "max_time_share: Input should be less than or equal to 1"),
        ({"model_name": ""}, "model_name: String should have at least 1 character"),
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
