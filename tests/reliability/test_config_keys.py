"""Unknown keys are refused, never recorded; values are judged once, by the constructors.

The command-line cases start from a store holding one FINISHED run and check that it is
untouched and that no run was added. The in-process cases prove that what is allowed is derived
from the constructors' signatures and the groups' YAML, so that a key another change adds to a
constructor (``optimizer.clip_norm``, ``model.dropout``) is accepted without editing a list.
"""

from __future__ import annotations

import pytest

from nnexp import build
from nnexp.config import check_keys, validate
from nnexp.errors import ConfigError
from tests.reliability.helpers import assert_refused

# (id, override, the unknown key as typed, the closest valid key)
MISSPELT = [
    ("optimizer_group", "+optimzer.lr=0.1", "optimzer.lr", "optimizer.lr"),
    ("top_level", "+epoch=5", "epoch", "epochs"),
    ("tracking", "+tracking.experimnt=foo", "tracking.experimnt", "tracking.experiment"),
    ("optimizer_option", "+optimizer.lr_decay=0.1", "optimizer.lr_decay", "optimizer.weight_decay"),
    ("model_option", "+model.activaton=tanh", "model.activaton", "model.activation"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("override", "typed", "closest"), [c[1:] for c in MISSPELT],
                         ids=[c[0] for c in MISSPELT])
def test_a_misspelt_key_is_refused_naming_the_closest_one(with_earlier_run, override, typed, closest):
    line = assert_refused(*with_earlier_run, override)
    assert f"unknown config key {typed} (did you mean {closest}?)" in line


# (id, overrides, what the one line must say): each disagreement the issue names, decided in
# the constructor and reported through the command line with the dotted key
DISAGREEMENTS = [
    ("gamma_above_1", ["schedule=step", "schedule.gamma=1.5"], "schedule.gamma must lie in (0, 1], got 1.5"),
    ("patience_0", ["early_stopping.patience=0"], "early_stopping.patience must be an integer >= 1, got 0"),
    ("dtype", ["dtype=float16"], "dtype: unknown dtype 'float16'; choose one of: float32, float64"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("args", "expected"), [c[1:] for c in DISAGREEMENTS], ids=[c[0] for c in DISAGREEMENTS])
def test_a_value_the_constructor_refuses_is_refused_once_naming_the_key(with_earlier_run, args, expected):
    assert expected in assert_refused(*with_earlier_run, *args)


def test_the_constructors_decide_the_disagreements():
    """gamma in (0, 1] (above 1 a "decay" grows the rate), patience >= 1 (0 meant the same as
    1), float32/float64 only (resolve_dtype: a string that is no dtype at all is refused too)."""
    from nnexp.core import EarlyStopping, ExponentialDecay, StepDecay
    from nnexp.core._checks import resolve_dtype
    from nnexp.data import load
    from nnexp.errors import DataError

    for schedule in (StepDecay, ExponentialDecay):
        assert schedule(gamma=1).gamma == 1.0
        with pytest.raises(ValueError, match=r"gamma must lie in \(0, 1\], got 1.01"):
            schedule(gamma=1.01)
    assert EarlyStopping(patience=1).patience == 1
    with pytest.raises(ValueError, match="patience must be an integer >= 1, got 0"):
        EarlyStopping(patience=0)
    for bad in ("float16", "not a dtype", "int8"):
        with pytest.raises(ValueError, match="unknown dtype"):
            resolve_dtype(bad)
    with pytest.raises(DataError, match="unknown dtype 'int8'"):   # the loader asks the core
        load("xor", dtype="int8")


def test_a_new_constructor_argument_is_a_valid_key_at_once(compose, monkeypatch):
    """Keys come from the signatures: an optimizer with ``clip_norm`` and an MLP with ``dropout``
    and dict-valued options are accepted, and their values are the constructors' to judge."""

    class ClippedAdam(build.OPTIMIZERS["adam"]):
        def __init__(self, lr=1e-3, clip_norm=None, **rest):
            if clip_norm is not None and clip_norm <= 0:
                raise ValueError(f"clip_norm must be a finite number > 0, got {clip_norm!r}")
            super().__init__(lr, **rest)

    class DropoutMLP(build.MLP):
        def __init__(self, sizes, activation="relu", output="softmax", loss="cross_entropy", init="he",
                     dtype="float64", seed=0, *, dropout=0.0, batch_norm=False, label_smoothing=0.0,
                     init_kwargs=None, activation_kwargs=None):
            super().__init__(sizes, activation, output, loss, init, dtype, seed)

    monkeypatch.setitem(build.OPTIMIZERS, "adamw", ClippedAdam)
    monkeypatch.setattr(build, "MLP", DropoutMLP)
    cfg = compose()
    cfg["optimizer"] = {"name": "adamw", "lr": 0.01, "clip_norm": 1.0, "beta1": 0.9}
    cfg["model"] |= {"dropout": 0.1, "batch_norm": True, "label_smoothing": 0.1,
                     "init_kwargs": {"std": 0.1}, "activation_kwargs": {"slope": 0.1}}
    check_keys(cfg)
    cfg["optimizer"]["clip_norm"] = -1.0
    with pytest.raises(ConfigError, match=r"optimizer.clip_norm must be a finite number > 0, got -1.0 "
                                          r"\(override it with optimizer.clip_norm=...\)"):
        validate(cfg)
    cfg["model"]["dropuot"] = 0.1
    with pytest.raises(ConfigError, match=r"unknown config key model.dropuot \(did you mean model.dropout\?\)"):
        check_keys(cfg)


def test_an_unknown_option_inside_a_dict_valued_key_names_that_key(compose):
    cfg = compose("+model.init_kwargs.stdd=0.05")
    with pytest.raises(ConfigError, match=r"^model.init_kwargs: unknown option 'stdd' for init 'he'.*"
                                          r"\(override it with model.init_kwargs=...\)$"):
        build.build_model(cfg, n_inputs=4, n_outputs=3)


def test_missing_keys_are_named(compose):
    cfg = compose("optimizer=sgd")
    del cfg["optimizer"]["lr"]        # SGD's lr has no default
    with pytest.raises(ConfigError, match=r"optimizer.lr is missing from the config \(set it with \+optimizer.lr=...\)"):
        check_keys(cfg)
    cfg = compose()
    del cfg["tracking"]["resume"]
    with pytest.raises(ConfigError, match="tracking.resume is missing"):
        check_keys(cfg)


def test_every_preset_and_sweep_file_passes_the_key_check(compose):
    """Experiment presets and sweep files set keys that exist: none is refused as unknown."""
    from tests.test_config import ALL_OPTIONS

    for group, option in ALL_OPTIONS:
        if group in ("experiment", "sweep") and option != "optuna_search":
            check_keys(compose(f"+{group}={option}" if group == "sweep" else f"{group}={option}"))
