"""Composition of every config group option, and validation of bad values before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnexp import build
from nnexp.config import flatten, validate
from nnexp.errors import ConfigError

CONF = Path(__file__).resolve().parent.parent / "conf"
GROUPS = ["model", "optimizer", "schedule", "data", "early_stopping", "experiment", "sweep"]


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


# Hydra plugins an option selects, as (module, what to install): skipped cleanly when absent.
PLUGINS = {"override /hydra/sweeper: optuna": ("hydra_plugins.hydra_optuna_sweeper", "hydra-optuna-sweeper")}


def plugin_needed(group: str, option: str) -> tuple[str, str] | None:
    text = (CONF / group / f"{option}.yaml").read_text()
    return next((plugin for line, plugin in PLUGINS.items() if line in text), None)


ALL_OPTIONS = [(group, option) for group in GROUPS for option in options(group)]


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), f"conf/{group}/ has no options"


@pytest.mark.parametrize(("group", "option"), ALL_OPTIONS, ids=[f"{g}={o}" for g, o in ALL_OPTIONS])
def test_every_option_composes_validates_and_builds(compose, group, option):
    needs = plugin_needed(group, option)
    if needs:
        pytest.importorskip(needs[0], reason=f"{group}={option} needs {needs[1]} (pip install -e \".[optuna]\")")
    override = f"+{group}={option}" if group == "sweep" else f"{group}={option}"
    cfg = compose(override)
    validate(cfg)
    # n_inputs/n_outputs of a data set do not matter for building; its loader is tested in tests/data
    net = build.build_model(cfg, n_inputs=4, n_outputs=1 if build.binary_targets(cfg, 2) else 3)
    assert [w.shape for w in net.params[::2]][0][0] == 4
    optimizer = build.build_optimizer(cfg)
    assert optimizer.lr == pytest.approx(cfg["optimizer"]["lr"])
    stopper = build.build_early_stopping(cfg)
    assert (stopper is not None) == cfg["early_stopping"]["enabled"]


def test_top_level_lr_reaches_whichever_optimizer(compose):
    for name in build.OPTIMIZERS:
        cfg = compose(f"optimizer={name}", "lr=0.0123")
        assert cfg["optimizer"]["lr"] == 0.0123
        assert type(build.build_optimizer(cfg)).__name__.lower().startswith(name[:3])


def test_model_hidden_override(compose):
    cfg = compose("model.hidden=[128,64]")
    net = build.build_model(cfg, 30, 2)
    assert [W.shape for W in net.params[::2]] == [(30, 128), (128, 64), (64, 2)]


def test_every_table_key_builds(compose):
    for name in build.SCHEDULES:
        cfg = compose(f"schedule={name}")
        assert build.build_optimizer(cfg).schedule is not None


def test_flatten_uses_dotted_keys():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None}) == {"a.b": 1, "a.c.d": [1, 2], "e": None}


# Values are judged by the constructors (the optimizer, schedule and early stopping are built by
# validate, the model when it is built) and named by their dotted key.
BAD_VALUES = [
    (["lr=-0.1"], "optimizer.lr must be a finite number > 0, got -0.1"),
    (["lr=0"], "optimizer.lr must be a finite number > 0"),
    (["lr=abc"], "optimizer.lr must be a number, got 'abc'"),
    (["epochs=-3"], "epochs must be a whole number >= 1"),
    (["epochs=2.5"], "epochs must be a whole number"),
    (["batch_size=0"], "batch_size must be a whole number >= 1"),
    (["model.hidden=[]"], "model.hidden must be a non-empty list"),
    (["model.hidden=[16,0]"], "model.hidden[1] must be an integer >= 1, got 0"),
    (["model.activation=relux"], "model.activation: unknown activation 'relux'"),
    (["model.output=identity", "model.loss=cross_entropy"], "model.output 'identity' cannot be trained"),
    (["dtype=float16"], "unknown dtype 'float16'; choose one of: float32, float64"),
    (["optimizer=momentum", "optimizer.momentum=1.5"], "optimizer.momentum must lie in [0, 1)"),
    (["optimizer=adam", "optimizer.beta2=1"], "optimizer.beta2"),
    (["schedule=step", "schedule.step_size=0"], "schedule.step_size"),
    (["schedule=step", "schedule.gamma=2"], "schedule.gamma must lie in (0, 1], got 2.0"),
    (["schedule=exponential", "schedule.gamma=0"], "schedule.gamma must be a finite number > 0"),
    (["early_stopping.patience=0"], "early_stopping.patience must be an integer >= 1, got 0"),
    (["early_stopping.monitor=train_accc"], "early_stopping.monitor: unknown early-stopping monitor"),
    (["progress=maybe"], "progress must be true or false"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_VALUES, ids=[" ".join(o) for o, _ in BAD_VALUES])
def test_bad_values_give_one_line_naming_the_key(compose, overrides, message):
    with pytest.raises(ConfigError) as caught:
        cfg = compose(*overrides)
        validate(cfg)
        build.build_model(cfg, n_inputs=4, n_outputs=3)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text
    key = overrides[-1].split("=")[0]
    assert key in text or "model.output" in text


def test_what_the_constructors_accept_the_config_accepts(compose):
    """One source of truth: values at the edge of each constructor's range pass validate too
    (gamma 1 keeps the rate, patience 1 stops at the first epoch without improvement)."""
    for overrides in (["schedule=step", "schedule.gamma=1"], ["early_stopping.patience=1"],
                      ["dtype=float32"], ["optimizer=momentum", "optimizer.momentum=0"]):
        cfg = compose(*overrides)
        validate(cfg)
        build.build_model(cfg, n_inputs=4, n_outputs=3)


def test_every_config_group_folder_ships_in_the_package():
    import tomllib

    pyproject = tomllib.loads((CONF.parent / "pyproject.toml").read_text())
    packages = set(pyproject["tool"]["setuptools"]["packages"])
    folders = {f"nnexp.conf.{path.name}" for path in CONF.iterdir() if path.is_dir() and path.name != "__pycache__"}
    assert folders <= packages, f"add {sorted(folders - packages)} to [tool.setuptools] packages"


def test_one_line_adds_the_cause_but_not_a_suppressed_context():
    from nnexp.errors import ConfigError, one_line

    def raise_from(cause_style):
        try:
            raise OSError("disk full")
        except OSError as error:
            if cause_style == "from":
                raise ConfigError("cannot write x") from error
            if cause_style == "none":
                raise ConfigError("cannot write x") from None
            raise ConfigError("cannot write x")

    messages = {}
    for style in ("from", "none", "context"):
        try:
            raise_from(style)
        except ConfigError as error:
            messages[style] = one_line(error)
    assert messages == {"from": "cannot write x (disk full)", "none": "cannot write x",
                        "context": "cannot write x (disk full)"}


def test_hydras_refusal_of_a_missing_key_becomes_nnexps_unknown_key(compose):
    """Hydra's "Could not override 'model.hiden'. To append to your config use +..." would lead
    the user to +model.hiden=..., which nnexp refuses; the key and its likely name instead."""
    from hydra.errors import ConfigCompositionException

    from nnexp.config import every_key, unknown_override

    with pytest.raises(ConfigCompositionException) as refused:
        compose("model.hiden=[4]")
    assert unknown_override(refused.value) == ("unknown config key model.hiden (did you mean "
                                               "model.hidden?): correct its name or remove it")
    with pytest.raises(ConfigCompositionException) as refused:
        compose("zzz=1")
    assert "python -m nnexp --cfg job lists every key" in unknown_override(refused.value)
    with pytest.raises(Exception) as other:
        compose("optimizer=nosuch")
    assert unknown_override(other.value) is None
    # a new entry of a dict-valued key does need Hydra's "+": its advice stands
    with pytest.raises(ConfigCompositionException) as entry:
        compose("model.init_kwargs.std=0.5")
    assert unknown_override(entry.value) is None and "+model.init_kwargs.std=0.5" in str(entry.value)
    # every key a run of any option accepts is among the suggestions
    keys = set(every_key())
    assert {"lr", "model.hidden", "optimizer.beta1", "tracking.uri", "data.n_per_class"} <= keys
    for options in ((), ("optimizer=adamw", "data=mnist", "early_stopping=patience")):
        assert {".".join(k.split(".")[:2]) for k in flatten(compose(*options))} <= keys
