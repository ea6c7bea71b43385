"""Session-wide services for the slow infrastructure tests: one PostgreSQL, one mlflow server.

Starting PostgreSQL (~3 s) and migrating MLflow's schema into it (~30 s) is the expensive part,
so every test of the session shares them; each test uses its own experiment names.
"""

from __future__ import annotations

import pytest

from tests.infra.services import Missing, MlflowServer, Postgres


@pytest.fixture(scope="session")
def postgres():
    try:
        pg = Postgres()
    except Missing as missing:
        pytest.skip(str(missing))
    try:
        yield pg.start()
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def team_server(postgres, tmp_path_factory):
    """``mlflow server`` with basic auth on the session's PostgreSQL, artifacts in a folder."""
    pytest.importorskip("psycopg", reason="psycopg not installed (pip install -e '.[team]')")
    server = MlflowServer(postgres.uri(), tmp_path_factory.mktemp("team-server"))
    try:
        yield server.start()
    finally:
        server.stop()
