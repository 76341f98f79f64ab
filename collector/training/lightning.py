"""``CollapseWatchLightning``: the Lightning ``Callback`` twin of ``CollapseWatchCallback``, sharing its
core (``collector.training.watch.TrainingWatch``) and its arguments.

It checks at the start of fitting (the baseline), every ``every_steps`` optimizer steps
(``trainer.global_step``), and when fitting ends; logs the ``collapse_watch/...`` values through
``pl_module.log_dict`` (so any Lightning logger receives them), writes the verdict beside each
saved checkpoint, and with ``stop_on`` sets ``trainer.should_stop``. The tokenizer must be given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

from collector.training.watch import Check, StopOn, TrainingWatch, log_values, options


class CollapseWatchLightning(Callback):
    """Record the diversity of a fixed probe set as a LightningModule trains; stop on collapse.

    ``model_attr`` names the attribute of the LightningModule that holds the Hugging Face causal
    LM to sample (``"model"``); None samples the module itself (it must have ``generate``).
    """

    def __init__(
        self,
        model_name: str,
        probes: list[str] | str | os.PathLike[str],
        tokenizer: Any,
        database_url: str | None = None,
        every_steps: int | None = 20,
        samples_per_prompt: int = 4,
        max_new_tokens: int = 64,
        stop_on: StopOn | None = None,
        *,
        model_attr: str | None = "model",
        **watch: Any,
    ) -> None:
        if not callable(getattr(tokenizer, "batch_decode", None)):
            raise ValueError(
                f"CollapseWatch: tokenizer: expected a Hugging Face tokenizer, got {type(tokenizer).__name__}"
            )
        self.tokenizer = tokenizer
        self.model_attr = model_attr
        self._resumed: str | None = None
        self.watch = TrainingWatch(
            options(
                model_name=model_name,
                probes=probes,
                database_url=database_url,
                every_steps=every_steps,
                samples_per_prompt=samples_per_prompt,
                max_new_tokens=max_new_tokens,
                stop_on=stop_on,
                **watch,
            )
        )

    @property
    def checks(self) -> list[Check]:
        return self.watch.checks

    @property
    def stop_reason(self) -> str | None:
        return self.watch.stop_reason

    def summary(self) -> dict[str, Any]:
        return self.watch.summary()

    def _lm(self, pl_module: Any) -> Any:
        return pl_module if self.model_attr is None else getattr(pl_module, self.model_attr)

    def _decide(self, trainer: Any, pl_module: Any, check: bool, *, log: bool = True) -> None:
        """A decision point every process reaches: process zero checks when ``check``; every
        process stops if it says so."""
        if trainer.is_global_zero and check:
            result = self.watch.check(self._lm(pl_module), self.tokenizer, trainer.global_step)
            if result is not None:
                values = log_values(result, self.watch.time_share())
                if log:
                    pl_module.log_dict(values, rank_zero_only=True)
                else:  # log_dict is not allowed in on_train_start
                    for logger in trainer.loggers:
                        logger.log_metrics(values, step=trainer.global_step)
        if self.watch.stop_from_process_zero(self.watch.stop_reason is not None):
            trainer.should_stop = True

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("collapse_watch")
        if isinstance(saved, dict) and isinstance(saved.get("prefix"), str):
            self._resumed = saved["prefix"]  # a resumed fit keeps its run's identity

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.watch.begin()
        if trainer.is_global_zero:
            self.watch.start(trainer.global_step, resumed=self._resumed)
        check = self.watch.opts.check_at_start and not self.watch.checked(trainer.global_step)
        self._decide(trainer, pl_module, check, log=False)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        last = trainer.max_steps > 0 and step >= trainer.max_steps
        if self.watch.due(step) or last:
            check = self.watch.scheduled(step) or (last and not self.watch.checked(step))
            self._decide(trainer, pl_module, check)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if (
            trainer.is_global_zero
            and not self.watch.checked(trainer.global_step)
            and self.watch.stop_reason is None
        ):
            self.watch.check(self._lm(pl_module), self.tokenizer, trainer.global_step)  # the last epoch's end

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        checkpoint["collapse_watch"] = {**self.summary(), "prefix": self.watch.prefix}
        dirpath = getattr(trainer.checkpoint_callback, "dirpath", None)
        if dirpath and trainer.is_global_zero:
            self.watch.write_verdict(Path(dirpath))
