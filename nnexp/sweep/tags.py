"""The tag names of sweeps, one constant each (until ``nnexp.tracking.tags`` holds them all)."""

TAG_SWEEP = "nnexp.sweep"                  # "parent" on a sweep's parent run
TAG_SWEEP_KEY = "nnexp.sweep_key"          # identity for resume (nnexp.sweep.identity.sweep_key)
TAG_SWEEP_RUN = "nnexp.sweep_run_id"       # the parent's own id, so it can be found by a tag search
TAG_INVOCATION = "nnexp.sweep_invocation"  # on parent and children: the `python -m nnexp -m` call
TAG_JOB = "nnexp.job"                      # on a child: its job number in the sweep
JOB_RECORD_PREFIX = "nnexp.job."           # on the parent: nnexp.job.<num> = the job's JSON record
TAG_OVERRIDES = "nnexp.overrides"
TAG_SWEPT = "nnexp.swept"
TAG_BEST_RUN_ID = "nnexp.best_run_id"
TAG_BEST_RUN_NAME = "nnexp.best_run_name"
TAG_BEST_MODEL = "nnexp.best_model"        # "<best child run id>:<its LoggedModel id>" on the parent
