"""nnexp's Hydra sweeper ``hydra/sweeper=nnexp_basic`` (the default of ``conf/config.yaml``):
Hydra's basic sweeper, with each job's config composed once (:mod:`nnexp.sweep.compose_once`)."""
