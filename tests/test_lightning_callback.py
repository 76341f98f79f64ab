"""``CollapseWatchLightning`` in a real Lightning fit of the tiny Llama (``tests/tiny_lm.py``): it
shares the core of the Trainer callback, so it records, and stops a collapsing run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pl = pytest.importorskip("lightning.pytorch")

import torch  # noqa: E402

from collapse_watch.integrations.lightning import CollapseWatchLightning  # noqa: E402
from collector.store import Store  # noqa: E402
from tests import tiny_lm  # noqa: E402


class LitLM(pl.LightningModule):
    def __init__(self, model: Any, lr: float) -> None:
        super().__init__()
        self.model, self.lr = model, lr

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.model(**batch).loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


def fit(tmp_path: Path, data: list[dict[str, Any]], lr: float) -> tuple[CollapseWatchLightning, Any]:
    tok = tiny_lm.tokenizer()
    callback = CollapseWatchLightning(
        "tiny-lit",
        tiny_lm.PROBES,
        tok,
        database_url=f"sqlite:///{tmp_path / 'h.db'}",
        every_steps=10,
        max_new_tokens=16,
        stop_on="collapse_suspected",
        embeddings=False,
    )
    loader = torch.utils.data.DataLoader(
        [{k: torch.tensor(v) for k, v in row.items()} for row in data], batch_size=8, shuffle=True
    )
    torch.manual_seed(0)
    trainer = pl.Trainer(
        max_steps=60,
        accelerator="cpu",
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(LitLM(tiny_lm.model(tok), lr), loader)
    return callback, trainer


@pytest.mark.slow
def test_a_collapsing_lightning_fit_is_stopped_and_recorded(tmp_path: Path) -> None:
    callback, trainer = fit(tmp_path, tiny_lm.collapsing_data(tiny_lm.tokenizer()), lr=1e-2)
    statuses = [(c.step, c.verdict.status) for c in callback.checks]
    assert statuses[0] == (0, "ok") and statuses[-1][1] == "collapse_suspected"
    assert trainer.global_step == statuses[-1][0] < 60 and callback.stop_reason
    store = Store(f"sqlite:///{tmp_path / 'h.db'}")
    run = callback.watch.run  # the UTC start time: Lightning has no run name to take
    assert [label for label, _ in store.version_order("tiny-lit")] == [f"{run}/step-{s}" for s, _ in statuses]


def test_a_lightning_fit_resumed_from_its_checkpoint_keeps_its_run_and_skips_recorded_steps(
    tmp_path: Path,
) -> None:
    tok = tiny_lm.tokenizer()
    data = tiny_lm.varied_data(tok, n=16)
    loader = torch.utils.data.DataLoader(
        [{k: torch.tensor(v) for k, v in row.items()} for row in data], batch_size=8
    )

    def run(ckpt_path: str | None) -> CollapseWatchLightning:
        callback = CollapseWatchLightning(
            "tiny-lit",
            tiny_lm.PROBES,
            tok,
            database_url=f"sqlite:///{tmp_path / 'h.db'}",
            every_steps=2,
            max_new_tokens=8,
            embeddings=False,
        )
        saver = pl.callbacks.ModelCheckpoint(
            dirpath=str(tmp_path / "ckpt"), every_n_train_steps=2, save_top_k=-1, filename="{step}"
        )
        trainer = pl.Trainer(
            max_steps=4,
            accelerator="cpu",
            callbacks=[callback, saver],
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=str(tmp_path),
        )
        trainer.fit(LitLM(tiny_lm.model(tok), 1e-3), loader, ckpt_path=ckpt_path)
        assert trainer.global_step == 4
        return callback

    first = run(None)
    resumed = run(str(tmp_path / "ckpt" / "step=2.ckpt"))
    assert resumed.watch.run == first.watch.run  # the same run, named in the checkpoint
    assert resumed.summary()["recorded_before_steps"] == [2, 4] and resumed.checks == []
    store = Store(f"sqlite:///{tmp_path / 'h.db'}")
    assert [label for label, _ in store.version_order("tiny-lit")] == [
        f"{first.watch.run}/step-{s}" for s in (0, 2, 4)
    ]
