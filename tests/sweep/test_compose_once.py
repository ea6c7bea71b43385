"""The default sweeper composes each job once (hydra_plugins/nnexp_sweeper,
nnexp/sweep/compose_once.py): what it hands a launcher is what Hydra's own loader composes, and
a sweep run with it writes the same job configs as one run with Hydra's basic sweeper."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from nnexp.sweep import compose_once
from nnexp.sweep.compose_once import ComposedOnce
from tests.reliability.helpers import isolated_env

JOBS = (["seed=3"], ["optimizer=sgd", "lr=0.1"], ["model=wide", "data=spiral"], ["+sweep=depth"])


@pytest.fixture(autouse=True)
def no_templates_from_other_tests(monkeypatch):
    monkeypatch.setattr(compose_once, "_templates", {})


@pytest.fixture
def hydra_loader():
    """Hydra's own config loader for nnexp's configs and a composed master (multirun) config."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    with initialize_config_module(config_module="nnexp.conf", version_base="1.3"):
        loader = GlobalHydra.instance().hydra.config_loader
        master = loader.load_configuration("config", overrides=["epochs=2"], run_mode=RunMode.MULTIRUN)
        yield loader, master


def _plain(config):
    return OmegaConf.to_container(config, resolve=False)


@pytest.mark.parametrize("overrides", JOBS)
def test_a_job_composed_ahead_is_what_hydra_composes(hydra_loader, overrides):
    loader, master = hydra_loader
    once = ComposedOnce(loader)
    once.compose_ahead(master, overrides)
    handed = once.load_sweep_config(master, list(overrides))
    assert _plain(handed) == _plain(loader.load_sweep_config(master, list(overrides)))
    # handed out once: the launcher writes hydra.job.id into it, so a second request composes anew
    again = once.load_sweep_config(master, list(overrides))
    assert again is not handed and _plain(again) == _plain(handed)


def _same_as_hydras(ours, theirs, *, same_loader=True):
    """The same config to the last type and flag: YAML tells 1 from 1.0 and '1' from 1, the
    pickle every node's type and metadata (Hydra's own compositions by an unpickled copy of a
    loader pickle a few bytes differently, so loaders that travelled compare without it)."""
    assert OmegaConf.to_yaml(ours) == OmegaConf.to_yaml(theirs)
    assert not same_loader or pickle.dumps(ours) == pickle.dumps(theirs)
    for mine, hydras in ((ours, theirs), (ours.hydra, theirs.hydra)):
        assert OmegaConf.is_struct(mine) == OmegaConf.is_struct(hydras)
        assert OmegaConf.is_readonly(mine) == OmegaConf.is_readonly(hydras)


SWEEPS = {
    "ints": [[f"seed={seed}"] for seed in range(4)],
    "numbers of every spelling": [[f"lr={lr}", "epochs=3"] for lr in ("0.1", "1", "1e-3", "-2", "inf")],
    "strings, quoted, null and booleans": [[f"tracking.run_name={v}", f"progress={b}"]
                                           for v, b in (("a", "true"), ("'1'", "false"), ("null", "true"),
                                                        ('"x y"', "false"), ("${seed}", "true"))],
    "values beside group choices": [[f"optimizer={o}", f"lr={lr}", f"seed={s}"]
                                    for o in ("sgd", "adam") for lr in (0.1, 0.01) for s in (0, 1)],
    "values beside lists, additions and deletions": [["model.hidden=[8,8]", f"seed={s}", "+model.init_kwargs.std=0.5",
                                                      f"lr={lr}", "~early_stopping"]
                                                     for s in (0, 1) for lr in (0.1, 0.2)],
    "a nested value": [[f"tracking.experiment=e{i}", f"model.init={init}"] for i in range(2)
                       for init in ("he", "xavier")],
}


@pytest.mark.parametrize("jobs", SWEEPS.values(), ids=SWEEPS.keys())
def test_jobs_derived_from_a_template_are_what_hydra_composes(hydra_loader, jobs):
    loader, master = hydra_loader
    once = ComposedOnce(loader)
    for overrides in jobs:
        _same_as_hydras(once.compose(master, overrides), loader.load_sweep_config(master, list(overrides)))


def test_a_derived_override_dirname_follows_the_sweeps_own_settings():
    """hydra.job.override_dirname is recomputed for a derived job as Hydra computes it, with the
    sweep's excluded keys and separators."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    settings = ["hydra.job.config.override_dirname.exclude_keys=[seed]",
                "hydra.job.config.override_dirname.kv_sep=:", "hydra.job.config.override_dirname.item_sep=__"]
    with initialize_config_module(config_module="nnexp.conf", version_base="1.3"):
        loader = GlobalHydra.instance().hydra.config_loader
        master = loader.load_configuration("config", overrides=settings, run_mode=RunMode.MULTIRUN)
        once = ComposedOnce(loader)
        for seed, lr in ((0, 0.1), (1, 0.01), (2, 0.5)):
            ours = once.compose(master, [f"seed={seed}", f"lr={lr}", "epochs=3"])
            _same_as_hydras(ours, loader.load_sweep_config(master, [f"seed={seed}", f"lr={lr}", "epochs=3"]))
        assert ours.hydra.job.override_dirname == "epochs:3__lr:0.5"


def test_only_plain_values_are_derived_and_each_group_choice_has_its_template(hydra_loader, monkeypatch):
    loader, master = hydra_loader
    once = ComposedOnce(loader)
    composed = []
    hydras = loader.load_sweep_config
    monkeypatch.setattr(loader, "load_sweep_config", lambda m, o: composed.append(list(o)) or hydras(m, o))
    jobs = [["optimizer=sgd", "lr=0.1"], ["optimizer=sgd", "lr=0.2"], ["optimizer=adam", "lr=0.1"],
            ["optimizer=adam", "lr=0.2"], ["model.hidden=[4]", "seed=1"], ["model.hidden=[8]", "seed=1"],
            ["seed=1", "seed=2"], ["seed=2", "seed=3"], ["+lr2=1"], ["+lr2=2"]]
    for overrides in jobs:
        once.compose(master, overrides)
    # the second of each pair is derived, except where a list, a repeated key or an addition
    # makes the job its own template
    assert composed == [jobs[0], jobs[2], jobs[4], jobs[5], jobs[6], jobs[7], jobs[8], jobs[9]]


def test_a_worker_derives_from_its_process_templates_and_sweeps_never_share_them(hydra_loader, monkeypatch):
    """Each task a joblib worker runs unpickles its own loader: the templates are the process's. A
    sweep's Hydra overrides carry its parent run (nnexp/sweep/context.py), so another sweep
    composes its own."""
    loader, master = hydra_loader
    composed = []
    hydras = loader.load_sweep_config
    composing = type(loader).load_sweep_config     # the class's: unpickled loaders use it too
    monkeypatch.setattr(type(loader), "load_sweep_config",
                        lambda self, m, o: composed.append(list(o)) or composing(self, m, o))
    for seed in range(3):
        shipped = pickle.loads(pickle.dumps(ComposedOnce(loader)))
        _same_as_hydras(shipped.compose(master, [f"seed={seed}"]), hydras(master, [f"seed={seed}"]),
                        same_loader=False)
    other = master.copy()
    OmegaConf.update(other, "hydra.overrides.hydra", [*master.hydra.overrides.hydra, "++hydra.job.env_set.X=1"],
                     force_add=True)
    ComposedOnce(loader).compose(other, ["seed=5"])
    assert composed == [["seed=0"], ["seed=5"]]


def test_a_process_keeps_only_its_newest_templates(hydra_loader, monkeypatch):
    loader, master = hydra_loader
    monkeypatch.setattr(compose_once, "TEMPLATES_AT_MOST", 2)
    once = ComposedOnce(loader)
    for optimizer in ("sgd", "adam", "rmsprop"):
        once.compose(master, [f"optimizer={optimizer}", "lr=0.1"])
    assert [key[-1][0] for key in compose_once._templates] == [("as written", "optimizer=adam"),
                                                                ("as written", "optimizer=rmsprop")]


def test_a_derivation_that_fails_falls_back_to_hydras_composition(hydra_loader, monkeypatch):
    loader, master = hydra_loader
    once = ComposedOnce(loader)
    once.compose(master, ["seed=0"])

    def broken(*args):
        raise ValueError("not this way")

    monkeypatch.setattr(compose_once, "_derive", broken)
    _same_as_hydras(once.compose(master, ["seed=1"]), loader.load_sweep_config(master, ["seed=1"]))


def test_a_changed_master_config_composes_anew(hydra_loader):
    loader, master = hydra_loader
    once = ComposedOnce(loader)
    once.compose_ahead(master, ["seed=1"])
    OmegaConf.update(master, "hydra.overrides.hydra", [*master.hydra.overrides.hydra, "hydra.job.chdir=false"],
                     force_add=True)
    assert once.take(master, ["seed=1"]) is None


def test_a_bad_override_fails_when_composed_ahead(hydra_loader):
    loader, master = hydra_loader
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        ComposedOnce(loader).compose_ahead(master, ["model=nosuch"])


def test_what_is_kept_is_bounded_forgotten_and_never_pickled(hydra_loader, monkeypatch):
    loader, master = hydra_loader
    monkeypatch.setattr(compose_once, "KEEP_AT_MOST", 2)
    once = ComposedOnce(loader)
    for seed in range(3):
        once.compose_ahead(master, [f"seed={seed}"])
    assert once.take(master, ["seed=2"]) is None          # over the bound: composed again later
    shipped = pickle.loads(pickle.dumps(once))            # joblib, Ray and submitit ship the loader
    assert shipped.take(master, ["seed=0"]) is None
    once.forget()
    assert once.take(master, ["seed=1"]) is None


@pytest.mark.slow
def test_a_sweep_writes_the_job_configs_hydras_basic_sweeper_writes(tmp_path, migrated_db):
    """The same sweep under nnexp's sweeper (run by the basic launcher, by the pool, which ships
    the composed configs to its workers, and by joblib, whose workers compose, deriving from
    their own templates) and under Hydra's: every job's .hydra/config.yaml and overrides.yaml
    are the same."""
    import shutil

    folders = {}
    for sweeper, launcher in (("nnexp_basic", "basic"), ("basic", "basic"), ("nnexp_basic", "pool"),
                              ("nnexp_basic", "joblib")):
        work = tmp_path / f"{sweeper}-{launcher}"
        work.mkdir()
        shutil.copy(migrated_db, work / "mlflow.db")
        done = subprocess.run(
            [sys.executable, "-m", "nnexp", "-m", f"hydra/sweeper={sweeper}", f"hydra/launcher={launcher}",
             "hydra.sweep.dir=sweep",
             "data=spiral", "epochs=2", "progress=false", "tracking.log_model=false", "diagnostics=off",
             "optimizer=sgd,adam", "model.hidden=[8],[8,8]", "lr=0.1,0.01"],
            cwd=work, capture_output=True, text=True, timeout=300, env=isolated_env(work))
        assert done.returncode == 0, done.stderr
        assert "8 jobs: 8 finished" in done.stdout
        folders[sweeper, launcher] = work / "sweep"
    theirs = folders["basic", "basic"]
    for ours in (folders["nnexp_basic", "basic"], folders["nnexp_basic", "pool"], folders["nnexp_basic", "joblib"]):
        for job in range(8):
            for name in ("config.yaml", "overrides.yaml"):
                assert ((ours / str(job) / ".hydra" / name).read_text()
                        == (theirs / str(job) / ".hydra" / name).read_text()), (ours, job, name)


def test_a_sweep_file_still_chooses_its_own_sweeper():
    """conf/sweeper_default.yaml makes nnexp's sweeper the default without beating a sweep
    file's choice (an override in config.yaml itself would)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    with initialize_config_module(config_module="nnexp.conf", version_base="1.3"):
        default = hydra_compose("config", return_hydra_config=True)
        optuna = hydra_compose("config", overrides=["+sweep=optuna_search"], return_hydra_config=True)
    assert default.hydra.sweeper._target_.endswith("ComposeOnceSweeper")
    assert optuna.hydra.sweeper._target_.endswith("OptunaSweeper")
