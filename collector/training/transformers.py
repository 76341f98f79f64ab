"""``CollapseWatchCallback``: a Hugging Face ``TrainerCallback`` (TRL's trainers take it too) that
watches output diversity while a model trains and can stop a collapsing fine-tune.

When it checks (``collector.training.watch.TrainingWatch`` does the work):

* at the start of training (step 0, or the resumed step): the baseline of the history's model;
* every ``every_steps`` optimizer steps (gradient accumulation counts once per optimizer step), or,
  with ``every_steps=None``, at each evaluation and checkpoint save;
* at the last step (``max_steps`` or the end of the last epoch), so the final model is judged.

After a check the values go to the trainer's next log (``collapse_watch/...``, so TensorBoard, W&B,
MLflow or whatever ``report_to`` names receive them; the callback moves itself ahead of the
reporting callbacks for that), the verdict goes beside every checkpoint saved
(``checkpoint-N/collapse_watch_verdict.json``), and with ``stop_on`` a verdict at least that bad sets
``control.should_training_stop`` and logs why.
"""

from __future__ import annotations

import inspect
import logging
import os
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from collector.training.watch import RUN_KEY, Check, StopOn, TrainingWatch, log_values, options

log = logging.getLogger("collapse_watch")


def _tokenizer_of(candidate: Any) -> Any:
    """The tokenizer itself, or the one a processor holds."""
    if candidate is not None and not hasattr(candidate, "batch_decode") and hasattr(candidate, "tokenizer"):
        return candidate.tokenizer
    return candidate


def _resumed_prefix(state: Any) -> str | None:
    """The run's version prefix a resumed trainer state carries (``RUN_KEY`` in its log history)."""
    for entry in reversed(state.log_history or []):
        prefix = entry.get(RUN_KEY)
        if isinstance(prefix, str):
            return prefix
    return None


class CollapseWatchCallback(TrainerCallback):
    """Record the diversity of a fixed probe set as the model trains; stop on collapse.

    ``tokenizer`` may be left out when the trainer has one (its ``processing_class``). Every
    argument is validated here; a ``ValueError`` (``TypeError`` for a name that is no string)
    names each bad one. Versions are ``{run_name}/step-N``: ``run_name`` defaults to the trainer's
    ``args.run_name``, else the UTC start time; a run resumed from a checkpoint keeps its name and
    skips the steps it recorded. After training, ``summary()`` says what was checked, the measured
    share of training time the checks took, and why training stopped; ``checks`` holds every
    recorded check and its verdict.
    """

    def __init__(
        self,
        model_name: str,
        probes: list[str] | str | os.PathLike[str],
        tokenizer: Any = None,
        database_url: str | None = None,
        every_steps: int | None = 20,
        samples_per_prompt: int = 4,
        max_new_tokens: int = 64,
        stop_on: StopOn | None = None,
        *,
        run_name: str | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 1234,
        batch_size: int = 32,
        embeddings: bool | str = True,
        max_time_share: float | None = None,
        version_prefix: str | None = None,
        check_at_start: bool = True,
    ) -> None:
        if tokenizer is not None and not callable(getattr(_tokenizer_of(tokenizer), "batch_decode", None)):
            raise ValueError(
                f"CollapseWatch: tokenizer: expected a Hugging Face tokenizer, got {type(tokenizer).__name__}"
            )
        self.tokenizer = _tokenizer_of(tokenizer)
        self.watch = TrainingWatch(
            options(
                model_name=model_name,
                probes=probes,
                database_url=database_url,
                every_steps=every_steps,
                samples_per_prompt=samples_per_prompt,
                max_new_tokens=max_new_tokens,
                stop_on=stop_on,
                run_name=run_name,
                temperature=temperature,
                top_p=top_p,
                seed=seed,
                batch_size=batch_size,
                embeddings=embeddings,
                max_time_share=max_time_share,
                version_prefix=version_prefix,
                check_at_start=check_at_start,
            )
        )
        self._pending: dict[str, float] | None = None

    @property
    def checks(self) -> list[Check]:
        return self.watch.checks

    @property
    def stop_reason(self) -> str | None:
        return self.watch.stop_reason

    def summary(self) -> dict[str, Any]:
        return self.watch.summary()

    # ------------------------------------------------------------------ trainer events
    # Every process of a distributed run reaches the same decision points (``_decide``): the world
    # process zero checks there, and every process takes its stop decision (``agree``).

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._run_before_reporters()
        tokenizer = self.tokenizer or _tokenizer_of(kwargs.get("processing_class"))
        if tokenizer is None:
            raise ValueError(
                "CollapseWatch: no tokenizer: pass tokenizer= to CollapseWatchCallback or processing_class= "
                "to the trainer"
            )
        self.tokenizer = tokenizer
        self.watch.begin()
        if state.is_world_process_zero:
            hint = getattr(args, "run_name", None)
            if hint == getattr(args, "output_dir", None):  # older transformers' default, no name
                hint = None
            self.watch.start(state.global_step, resumed=_resumed_prefix(state), hint=hint)
        self._decide(
            kwargs["model"],
            state,
            control,
            self.watch.opts.check_at_start and not self.watch.checked(state.global_step),
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        step = state.global_step
        last = state.max_steps > 0 and step >= state.max_steps
        if self.watch.due(step) or last:
            self._decide(
                kwargs["model"],
                state,
                control,
                self.watch.scheduled(step) or (last and not self.watch.checked(step)),
            )

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.watch.opts.every_steps is None:
            self._decide(kwargs["model"], state, control, not self.watch.checked(state.global_step))

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.watch.opts.every_steps is None:
            self._decide(kwargs["model"], state, control, not self.watch.checked(state.global_step))
        checkpoint = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if state.is_world_process_zero and os.path.isdir(checkpoint):
            self.watch.write_verdict(checkpoint)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if self._pending and logs is not None:
            logs.update(self._pending)
            if state.log_history:  # the trainer stored its copy before calling the callbacks
                state.log_history[-1].update({**self._pending, RUN_KEY: self.watch.prefix})
            self._pending = None

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        if not self.watch.checked(state.global_step) and self.watch.stop_reason is None:
            self._check(kwargs["model"], state, control)  # stopped early by something else
        if self._pending:  # no log came after the last check: keep it in the trainer's history
            state.log_history.append({**self._pending, RUN_KEY: self.watch.prefix, "step": state.global_step})
            self._pending = None
        s = self.summary()
        log.info(
            "collapse-watch: %d checks took %.1fs, %.1f%% of %.1fs of training%s",
            len(s["checks"]),
            s["check_seconds"],
            100 * s["time_share"],
            s["elapsed_seconds"],
            f"; {s['stop_reason']}" if s["stop_reason"] else "",
        )

    # ------------------------------------------------------------------ helpers

    def _decide(self, model: Any, state: Any, control: Any, check: bool) -> None:
        """A decision point: process zero checks when ``check``; every process stops if it says so."""
        if state.is_world_process_zero and check:
            self._check(model, state, control)
        if self.watch.stop_from_process_zero(self.watch.stop_reason is not None):
            control.should_training_stop = True

    def _check(self, model: Any, state: Any, control: Any) -> None:
        check = self.watch.check(model, self.tokenizer, state.global_step)
        if check is not None:
            self._pending = log_values(check, self.watch.time_share())
            control.should_log = True

    def _run_before_reporters(self) -> None:
        """Move this callback to the front of the trainer's callback list.

        The trainer puts the reporting callbacks (TensorBoard, W&B, MLflow, ...) before the user's
        and hands each the same ``logs`` dict in turn; values added by a callback that runs after
        them would reach none. The list is the calling ``CallbackHandler``'s (found on the stack:
        the trainer hands callbacks no reference to it).
        """
        frame = inspect.currentframe()
        for _ in range(8):
            frame = frame.f_back if frame is not None else None
            if frame is None:
                break
            callbacks = getattr(frame.f_locals.get("self"), "callbacks", None)
            if isinstance(callbacks, list) and any(c is self for c in callbacks):
                callbacks.remove(self)
                callbacks.insert(0, self)
                return
        log.warning(
            "collapse-watch: callback list not found; reporters listed before it will miss its values"
        )


__all__ = ["CollapseWatchCallback"]
