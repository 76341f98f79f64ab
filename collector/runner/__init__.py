"""One collection run of one model: sample -> store (in batches, as they arrive) -> score -> close.

The package, by concept: ``lifecycle`` (``Runner``: open the source, run it, record, score,
close), ``sampled`` (a sampling run), ``pulled`` (a pull pass, its batches and quarantine),
``open_run`` (one run being written), ``closes`` (runs in progress and refused closes),
``watch`` (stop event and deadline), ``report`` (what a run reports and how it ends).

Guarantees (issues #4, #3 and #11):

* A run row exists from the first stored sample on, in status ``running``, with its owner process
  (``collector.owner``); samples are appended in batches while sampling goes on, so a killed
  process keeps what it sampled, and the run only counts as complete once ``finish_run`` commits
  its status together with its metric values.  On the next start
  ``Store.reclaim_orphaned_runs`` turns a run whose owner is gone into ``interrupted``.
* Every run ends in a terminal state whatever is raised: a source that cannot even be built or
  opened (unreachable database, missing key) is a ``failed`` run with the reason; a glob matching
  no file is a ``no_data`` run.  A request that fails is stored as a sample with its error; metrics
  are computed only when at least ``min_samples`` outputs arrived (status ``partial`` when some
  failed or were quarantined), otherwise the run is ``failed`` with the reason.
* Pull sources are read in batches of ``PULL_BATCH``; each batch is stored and the source position
  advanced in one transaction (``Store.commit_pull``).  A record that cannot be stored (unparsable,
  label too long) is quarantined with its location and reason and the pass goes on.  Memory is
  bounded: a run scores a uniform sample of at most ``max_scored_samples`` outputs
  (``collector.scored_subset``: the same sample its assessment reloads).
* ``stop`` (the scheduler's shutdown event) and the model's ``run_timeout_seconds`` are checked
  between samples and batches: the run stores what it has and is closed as ``interrupted``.
* Every error text is redacted of the source's secrets before it is stored or logged.
"""

from collector.runner.lifecycle import Runner
from collector.runner.open_run import FLUSH_EVERY, FLUSH_SECONDS, resolve_version, to_record
from collector.runner.pulled import PULL_BATCH, source_id
from collector.runner.report import Progress, RunInterrupted, RunReport
from collector.runner.sampled import sample_requests

__all__ = [
    "FLUSH_EVERY",
    "FLUSH_SECONDS",
    "PULL_BATCH",
    "Progress",
    "RunInterrupted",
    "RunReport",
    "Runner",
    "resolve_version",
    "sample_requests",
    "source_id",
    "to_record",
]
