"""tracking.child_figures through the command line: a sweep draws its best child's figures at its
end (the others keep the numbers), ``all`` draws them in every child, and
``python -m nnexp.report RUN_ID`` draws any run's later, the same as the run would have."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli

FIGURES = {"learning_curves.png", "dynamics.png", "confusion_matrix.png"}


def _children(uri):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(ids)
    parent = next(r for r in runs if r.data.tags.get("nnexp.sweep") == "parent")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return client, parent, children


def _pictures(client, run) -> set[str]:
    return {a.path for a in client.list_artifacts(run.info.run_id) if a.path.endswith(".png")}


@pytest.mark.slow
def test_a_sweep_draws_only_its_best_childs_figures_and_report_draws_the_others(tmp_path, tracking_uri):
    run_cli("-m", "data=spiral", "epochs=3", "progress=false", "lr=0.03,0.001,0.0001", cwd=tmp_path, check=True)
    client, parent, children = _children(tracking_uri)
    best = parent.data.tags["nnexp.best_run_id"]
    assert len(children) == 3
    for child in children:
        expected = FIGURES if child.info.run_id == best else set()
        assert _pictures(client, child) == expected, child.info.run_name
        assert "nnexp.confusion_matrix" in child.data.tags   # the numbers are kept either way
    other = next(c for c in children if c.info.run_id != best)

    done = run_cli(other.info.run_id, cwd=tmp_path, module="nnexp.report")
    assert done.returncode == 0, done.stderr
    assert f"run {other.info.run_id}" in done.stdout
    assert _pictures(client, other) == FIGURES
    assert client.get_run(other.info.run_id).info.status == "FINISHED"   # its end is untouched


@pytest.mark.slow
def test_child_figures_all_draws_them_in_every_child(tmp_path, tracking_uri):
    run_cli("-m", "data=spiral", "epochs=2", "progress=false", "lr=0.01,0.001",
            "tracking.child_figures=all", cwd=tmp_path, check=True)
    client, _, children = _children(tracking_uri)
    assert len(children) == 2 and all(_pictures(client, c) == FIGURES for c in children)


@pytest.mark.slow
def test_report_refuses_an_unknown_run_in_one_line_and_draws_nothing(tmp_path, tracking_uri):
    run_cli("data=spiral", "epochs=2", "progress=false", cwd=tmp_path, check=True)
    done = run_cli("0123456789abcdef0123456789abcdef", cwd=tmp_path, module="nnexp.report")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("nnexp.report: error: no run '0123456789abcdef0123456789abcdef'")


def test_a_bad_child_figures_value_is_refused_before_any_run(tmp_path, tracking_uri):
    done = run_cli("data=spiral", "epochs=1", "tracking.child_figures=some", cwd=tmp_path)
    assert done.returncode == 2
    assert "tracking.child_figures" in done.stderr and "must be one of: all, best" in done.stderr
    from nnexp.tracking.store import sqlite_path

    db = sqlite_path(tracking_uri)
    assert db is None or not _any_run(db)


def _any_run(db) -> bool:
    import sqlite3

    with sqlite3.connect(db) as connection:
        return bool(connection.execute("select count(*) from runs").fetchone()[0])


def test_figures_drawn_from_the_store_are_drawn_from_the_runs_own_numbers(tmp_path, tracking_uri, compose,
                                                                          monkeypatch):
    """What a finished run's record gives back (curves, layer statistics, confusion matrix,
    best epoch) is what the run itself drew from at its end."""
    from nnexp import app
    from nnexp.report import run_figures
    from nnexp.tracking import open_store

    live = []
    original = run_figures.draw
    monkeypatch.setattr(run_figures, "draw", lambda numbers, folder: live.append(numbers) or original(numbers, folder))
    result = app.run(compose("data=spiral", "epochs=4", "progress=false", "tracking.log_model=false"),
                     show_progress=False)
    (drawn,) = live
    store = open_store(result.tracking_uri, result.experiment)
    (run,) = [r for r in store.backend.find_runs([store.experiment_id]) if r.run_id == result.run_id]
    back = run_figures.numbers_from_store(store.backend, run)
    assert back.title == drawn.title and back.best_epoch == drawn.best_epoch
    # (learning_curves draws the loss and accuracy curves; the rows also carry lr, epoch_seconds)
    assert back.rows == [{k: row[k] for k in run_figures.CURVE_METRICS if k in row} for row in drawn.rows]
    assert back.series == {k: [(e, pytest.approx(v, rel=1e-15)) for e, v in points]
                           for k, points in drawn.series.items()}
    assert back.confusion == drawn.confusion and sum(map(sum, back.confusion[0])) > 0
