"""nnexp's Hydra launcher ``hydra/launcher=pool``: jobs on a pool of worker processes that
survives the death of any one of them (:mod:`nnexp.sweep.pool`)."""
