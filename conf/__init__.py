"""Hydra configuration groups, shipped as the package ``nnexp.conf`` (see pyproject.toml)."""
