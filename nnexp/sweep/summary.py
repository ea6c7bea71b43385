"""Compare the runs of a sweep: counts, a ranked table, a CSV and plots.

Used at the end of every sweep (written into the parent run) and by ``python -m nnexp.compare``
for sweeps already done. Everything comes from the store: the parent's nested child runs, plus
the job records on the parent (``nnexp.job.<num>``, see :mod:`nnexp.sweep.job`) for the counts,
for jobs that failed before their run existed and for runs a resumed job reused. Nothing is
read from the sweep folder, so the driver need not see where the jobs ran.
"""

from __future__ import annotations

import csv
import math
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nnexp.errors import raise_hidden_interrupt

# Columns of the comparison table, after the swept parameters.
SCORE_COLUMNS = ("best_val_loss", "test_acc", "test_loss", "best_epoch", "epochs_run")
# Outcomes a sweep counts, from each job's (status, stop_reason).
OUTCOMES = ("finished", "early_stopped", "diverged", "failed", "killed", "skipped")


def outcome(status: str, stop_reason: str | None) -> str:
    """One of :data:`OUTCOMES` for a job's or run's status and stop reason."""
    if status == "SKIPPED":
        return "skipped"
    if status == "KILLED":
        return "killed"
    if stop_reason == "diverged":
        return "diverged"
    if status == "FAILED":
        return "failed"
    return "early_stopped" if stop_reason == "early_stopped" else "finished"


def param_for(key: str, params: Mapping[str, str]) -> str:
    """The logged param that a swept key sets: ``lr`` → ``lr``; a config group such as
    ``model`` or ``optimizer`` → ``group.model`` (the preset's name)."""
    key = key.lstrip("+~")
    for candidate in (key, f"group.{key}", f"{key}.name"):
        if candidate in params:
            return candidate
    return key


def child_rows(backend, experiment_id: str, parent_run_id: str, swept: Sequence[str]) -> list[dict[str, Any]]:
    """One row per nested run of ``parent_run_id``: name, id, outcome, swept values and scores
    (``backend``: a tracking backend, see :mod:`nnexp.tracking.records`)."""
    from nnexp.tracking.run import TAG_PARENT

    return _rows_of(backend.find_runs([experiment_id], tags={TAG_PARENT: parent_run_id}), swept)


def _rows_of(runs, swept: Sequence[str]) -> list[dict[str, Any]]:
    from nnexp.app import TAG_CONFIG_HASH
    from nnexp.report.sweep_report import worst_class

    rows = []
    for run in runs:
        params, metrics, tags = run.params, run.metrics, run.tags
        row: dict[str, Any] = {"run_name": run.run_name, "run_id": run.run_id,
                               "outcome": outcome(run.status, tags.get("nnexp.stop_reason")),
                               "overrides": tags.get("nnexp.overrides", "")}
        for key in swept:
            row[key] = params.get(param_for(key, params))
        for column in SCORE_COLUMNS:
            row[column] = metrics.get(column, math.nan)
        row.update(worst_class(metrics))
        row["error"] = tags.get("nnexp.error", "")
        row["config_hash"] = tags.get(TAG_CONFIG_HASH, "")
        rows.append(row)
    return rows


def rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best first: finished runs by best validation loss, then the rest (diverged, failed...)."""
    def key(row):
        loss = row.get("best_val_loss", math.nan)
        usable = row["outcome"] in ("finished", "early_stopped") and isinstance(loss, float) and math.isfinite(loss)
        return (0 if usable else 1, loss if usable else 0.0)

    return sorted(rows, key=key)


def write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    columns = list(dict.fromkeys(column for row in rows for column in row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def format_table(rows: Sequence[Mapping[str, Any]], swept: Sequence[str]) -> str:
    """A ranked plain-text table for the terminal."""
    columns = ["#", "run_name", *swept, "outcome", *SCORE_COLUMNS[:3], "best_epoch"]
    lines = [[str(i + 1), *(_cell(row.get(c)) for c in columns[1:])] for i, row in enumerate(rows)]
    widths = [max(len(c), *(len(line[i]) for line in lines)) if lines else len(c)
              for i, c in enumerate(columns)]
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    out += ["  ".join(v.ljust(w) for v, w in zip(line, widths)) for line in lines]
    return "\n".join(out)


def _cell(value: Any) -> str:
    if isinstance(value, str):  # params come back as text: shorten long numbers (0.00809638...)
        try:
            value = float(value) if len(value) > 8 else value
        except ValueError:
            pass
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4g}"
    return "-" if value is None else str(value)


def counts(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many jobs ended each way (from the jobs' result records)."""
    tally = Counter(outcome(r.get("status", "FAILED"), r.get("stop_reason")) for r in records)
    return {"jobs": len(records), **{name: tally.get(name, 0) for name in OUTCOMES}}


def format_counts(summary: Mapping[str, Any]) -> str:
    c = summary["counts"]
    parts = ", ".join(f"{c[name]} {name.replace('_', ' ')}" for name in OUTCOMES if c[name])
    best = summary.get("best")
    best_text = (f"; best: {best['run_name']} (best_val_loss={best['best_val_loss']:.4g}, "
                 f"test_acc={best['test_acc']:.4g})") if best else ""
    return f"sweep: {c['jobs']} jobs: {parts or 'none'}{best_text} · compare: python -m nnexp.compare"


def write_plots(backend, rows: Sequence[Mapping[str, Any]], swept: Sequence[str], folder: Path) -> list[Path]:
    """learning_curves.png (every child's validation curves overlaid), score_vs_<key>.png and
    gradient_flow.png/.csv (children that logged per-layer gradient norms)."""
    from nnexp.plots import overlay_curves, score_against
    from nnexp.report.sweep_report import gradient_flow

    histories = {}
    for row in rows:
        if not row.get("run_id"):
            continue
        histories[row["run_name"]] = {
            metric: backend.metric_history(row["run_id"], metric)
            for metric in ("val_loss", "val_acc", "train_loss")}
    paths = [overlay_curves(histories, folder / "learning_curves.png")]
    for key in swept:
        others = [k for k in swept if k != key]
        paths.append(score_against(rows, key, others[0] if others else None,
                                   folder / f"score_vs_{key.lstrip('+~').replace('/', '_')}.png"))
    paths += gradient_flow(backend, rows, swept, folder)
    return paths


def _dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per config: a resumed sweep's parent holds the FAILED attempt of a job whose
    driver was killed and the FINISHED one that replaced it; keep the best of them."""
    ranked, seen, kept = rank(rows), set(), []
    for row in ranked:
        key = row.get("config_hash") or row.get("run_id") or id(row)
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


def sweep_rows(backend, experiment_id: str, parent_run_id: str, swept: Sequence[str],
               records: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Ranked rows of a sweep: its children, runs its jobs reused (resume) and jobs without a run."""
    rows = child_rows(backend, experiment_id, parent_run_id, swept)
    known = {row["run_id"] for row in rows}
    for job, record in records.items():
        if record.get("run_id") in known:
            continue
        if record.get("status") == "SKIPPED" and record.get("config_hash"):
            from nnexp.app import TAG_CONFIG_HASH

            found = [r for r in backend.find_runs([experiment_id], tags={TAG_CONFIG_HASH: record["config_hash"]},
                                                  status="FINISHED") if r.run_id == record.get("run_id")]
            rows.extend(_rows_of(found, swept))
            known.update(r.run_id for r in found)
        elif record.get("status") in ("FAILED", "RUNNING", "KILLED") and not record.get("run_id"):
            rows.append({"run_name": f"job {job}", "run_id": "", "outcome": "failed" if record["status"] != "KILLED"
                         else "killed", "overrides": " ".join(record.get("overrides", [])),
                         **{key: _override_value(record, key) for key in swept},
                         **{column: math.nan for column in SCORE_COLUMNS}, "error": record.get("error", "")})
    return _dedupe(rows)


def job_outcomes(records: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The records with a job whose process died mid-way (still RUNNING) counted as FAILED."""
    return [dict(r, status="FAILED", error=r.get("error") or f"the job's process {r.get('pid')} died")
            if r.get("status") == "RUNNING" else dict(r) for r in records.values()]


def summarise_sweep(parent, invocation: str, swept: Sequence[str], on_best=None) -> dict[str, Any]:
    """Write the sweep's summary into its parent run and return it, all read from the store.

    Parent metrics ``sweep_<outcome>`` count the jobs of this invocation; the table, the best
    run and the plots cover every child of the parent (a resumed sweep includes the earlier
    children and the runs its jobs reused). ``on_best(best_row)`` is called once the best child
    is known, before the plots (the model helper starts on its LoggedModel meanwhile).
    """
    from nnexp.sweep.job import read_job_records
    from nnexp.sweep.tags import TAG_SWEEP_RUN
    from nnexp.tracking import replay
    from nnexp.tracking.store import mark_stale_runs_failed

    backend, store = parent.backend, parent.store
    replay.replay_pending(backend, store.uri)   # what a job's run could not write during an outage
    mark_stale_runs_failed(store)   # children whose worker died (SIGKILL) end FAILED now
    (me,) = [r for r in backend.find_runs([store.experiment_id], tags={TAG_SWEEP_RUN: parent.run_id})]
    all_records = read_job_records(me.tags)
    records = {job: r for job, r in all_records.items() if r.get("invocation") == invocation}
    rows = sweep_rows(backend, store.experiment_id, parent.run_id, swept, all_records)
    tally = counts(job_outcomes(records))
    best = rows[0] if rows and rows[0]["outcome"] in ("finished", "early_stopped") else None
    summary = {"counts": tally, "best": best, "rows": rows}
    if best and on_best is not None:
        on_best(best)

    parent.log_metrics({f"sweep_{name}": value for name, value in tally.items()})
    if best:
        parent.log_metrics({"best_val_loss": best["best_val_loss"], "best_test_acc": best["test_acc"]})
        parent.set_tags({"nnexp.best_run_id": best["run_id"], "nnexp.best_run_name": best["run_name"]})
    with tempfile.TemporaryDirectory(prefix="nnexp-sweep-") as tmp:
        folder = Path(tmp)
        write_csv(rows, folder / "comparison.csv")
        if rows:
            write_plots(backend, [r for r in rows if r.get("run_id")], swept, folder)
        parent.log_artifacts(folder)
    return summary


def draw_best_figures(parent, best: Mapping[str, Any]) -> list[str]:
    """Draw the best child's ``learning_curves.png``, ``dynamics.png`` and
    ``confusion_matrix.png`` from the store into its artifacts, unless it has them already
    (``tracking.child_figures=all``, or a resumed sweep whose best is unchanged); returns the
    names drawn. The children record the numbers only (:mod:`nnexp.report.run_figures` says
    why). A failure is one warning line: the sweep's results stand."""
    import sys

    from nnexp.app import TAG_CONFIG_HASH
    from nnexp.errors import one_line
    from nnexp.report.run_figures import draw_into_run, has_figures

    backend, store = parent.backend, parent.store
    found = [run for run in backend.find_runs([store.experiment_id], tags={TAG_CONFIG_HASH: best["config_hash"]})
             if run.run_id == best["run_id"]] if best.get("config_hash") else []
    if not found or has_figures(found[0]):
        return []
    try:
        return draw_into_run(backend, found[0])
    except Exception as error:  # noqa: BLE001 - the sweep's runs and summary are complete without them
        raise_hidden_interrupt(error)
        print(f"nnexp: warning: the best child's figures were not drawn ({one_line(error)}); "
              f"python -m nnexp.report {best['run_id']} draws them", file=sys.stderr, flush=True)
        return []


def best_model_missing(parent, best: Mapping[str, Any]) -> bool:
    """Whether the best child's LoggedModel is still to be logged (a resumed sweep whose best
    is unchanged has it)."""
    from nnexp.sweep.tags import TAG_BEST_MODEL, TAG_SWEEP_RUN

    store = parent.store
    (me,) = store.backend.find_runs([store.experiment_id], tags={TAG_SWEEP_RUN: parent.run_id})
    return not me.tags.get(TAG_BEST_MODEL, "").startswith(f"{best['run_id']}:")


def log_best_model(parent, best: Mapping[str, Any], helper=None) -> str | None:
    """Log the best child's LoggedModel, once per sweep, and return its predict command.

    Children keep ``weights.npz``, ``preprocessing.npz`` and ``input_example.npz``
    (:func:`nnexp.tracking.model.save_model_inputs`); logging a LoggedModel per child would cost
    each job about 1-3 s of MLflow (``bench/README.md``). ``helper``: a
    :class:`~nnexp.tracking.model_helper.ModelHelper` already asked for this model (it is
    logged here, in this process, if the helper cannot). The model's id is tagged on the
    child (``nnexp.model_id``) and the parent (``nnexp.best_model``); a resumed sweep whose
    best is unchanged logs nothing new. A failure is one warning line: the sweep's results
    stand."""
    import sys

    from nnexp.errors import one_line
    from nnexp.sweep.tags import TAG_BEST_MODEL
    from nnexp.tracking import default_uri
    from nnexp.tracking.model import log_model_of_run
    from nnexp.tracking.tags import MODEL_ID

    store = parent.store
    asked = helper is not None and helper.asked
    if not asked and not best_model_missing(parent, best):
        return None
    try:
        model = _helpers_answer(helper) if asked else None
        if model is None:   # no helper, or it failed: log it here
            model = log_model_of_run(store.uri, best["run_id"])
    except Exception as error:  # noqa: BLE001 - the sweep's runs and summary are complete without it
        raise_hidden_interrupt(error)
        print(f"nnexp: warning: the best child's model was not logged ({one_line(error)}); its "
              f"weights.npz is among its artifacts", file=sys.stderr, flush=True)
        return None
    store.backend.log_batch(best["run_id"], tags={MODEL_ID: model.model_id})
    parent.set_tags({TAG_BEST_MODEL: f"{best['run_id']}:{model.model_id}"})
    return model.predict_command(store.uri, default_uri())


def _helpers_answer(helper):
    """The model helper's LoggedModel, or None if it failed (the caller logs the model itself)."""
    try:
        return helper.answer()
    except Exception as error:  # noqa: BLE001 - the helper is an optimisation
        raise_hidden_interrupt(error)
        return None


def _override_value(record: Mapping[str, Any], key: str) -> str | None:
    for override in record.get("overrides", []):
        name, _, value = override.partition("=")
        if name.lstrip("+~") == key.lstrip("+~"):
            return value
    return None
