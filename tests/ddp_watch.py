"""One process of a 2-process CPU (gloo) distributed fine-tune under ``CollapseWatchCallback``,
started by ``torch.distributed.run`` from tests/test_training_callback.py: it trains the tiny Llama
on one repeated answer and writes what this rank saw to ``OUT/rank-N.json``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from transformers import Trainer, TrainingArguments

from collapse_watch.integrations.transformers import CollapseWatchCallback
from tests import tiny_lm


def main(out: Path, db: str) -> None:
    rank = int(os.environ["RANK"])
    tok = tiny_lm.tokenizer()
    callback = CollapseWatchCallback(
        model_name="tiny-ddp",
        probes=tiny_lm.PROBES,
        tokenizer=tok,
        database_url=db,
        every_steps=10,
        max_new_tokens=16,
        stop_on="collapse_suspected",
        embeddings=False,
        run_name="ddp",
    )
    args = TrainingArguments(
        output_dir=str(out / "trainer"),
        max_steps=60,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        logging_steps=5,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        ddp_backend="gloo",
        seed=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=tiny_lm.model(tok), args=args, train_dataset=tiny_lm.collapsing_data(tok), callbacks=[callback]
    )
    trainer.train()
    result = {
        "rank": rank,
        "world_size": trainer.args.world_size,
        "global_step": trainer.state.global_step,
        "opened_history": callback.watch._history is not None,
        "checks": [(c.step, c.verdict.status) for c in callback.checks],
        "stop_reason": callback.stop_reason,
    }
    (out / f"rank-{rank}.json").write_text(json.dumps(result), encoding="utf-8")
    callback.watch.close()
    # End both ranks together and skip interpreter finalization. torch 2.13's gloo teardown races
    # after DDP training, two ways seen in this test: a rank exiting with the group still up aborts
    # in finalization (SIGABRT, once in CI), and with destroy_process_group() the DDP reducer's
    # last reference, dropped when main() returns, joins a gloo thread that waits for the GIL the
    # dropping thread holds (a deadlock, once in five full runs here). Everything this test
    # asserts is written above; the barrier keeps one rank's exit from closing sockets under the
    # other.
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
