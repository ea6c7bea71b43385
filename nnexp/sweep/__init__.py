"""Sweeps: a Hydra multirun recorded as one parent MLflow run with a nested child per job, held
together by the tracking store alone, whichever launcher runs the jobs and wherever.

- :mod:`~nnexp.sweep.callback`: the driver: refuses sweeps that would split across stores or
  experiments, creates or reopens the parent, gives the sweep its own folder, ships the job
  context, and writes the summary at the end.
- :mod:`~nnexp.sweep.context`: the job context (parent run id, experiment, absolute tracking URI,
  data root), shipped inside every job's config as ``hydra.job.env_set.NNEXP_SWEEP`` so that a
  job on another machine joins its sweep like one in the same process.
- :mod:`~nnexp.sweep.job`: one job: joins the parent, trains, records its outcome on the parent.
- :mod:`~nnexp.sweep.summary`: counts, best child, ``comparison.csv`` and plots, from the store.
- :mod:`~nnexp.sweep.identity`: swept keys, the sweep's identity for resume, its experiment.
- :mod:`~nnexp.sweep.signals`, :mod:`~nnexp.sweep.workers`, :mod:`~nnexp.sweep.streams`:
  interrupts, joblib workers, a closed stdout.
"""

from nnexp.sweep.callback import SweepAborted, SweepCallback
from nnexp.sweep.context import JobContext
from nnexp.sweep.identity import sweep_key, swept_keys
from nnexp.sweep.tags import TAG_SWEEP, TAG_SWEEP_KEY
from nnexp.sweep.workers import prepare_worker, warm_up_workers

__all__ = ["TAG_SWEEP", "TAG_SWEEP_KEY", "JobContext", "SweepAborted", "SweepCallback", "prepare_worker",
           "sweep_key", "swept_keys", "warm_up_workers"]
