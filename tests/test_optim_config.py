"""The new optimizer, schedule and model options composed as the command line composes them
and built by nnexp.build (fast; the real command line: tests/test_optim_cli.py)."""

import numpy as np
import pytest

from nnexp import build
from nnexp.config import validate
from nnexp.core import AdamW, CosineDecay, OneCycle
from nnexp.errors import ConfigError


def test_adamw_and_its_defaults(compose):
    cfg = compose("optimizer=adamw", "lr=0.003")
    validate(cfg)
    opt = build.build_optimizer(cfg)
    assert type(opt) is AdamW and opt.base_lr == 0.003
    assert (opt.weight_decay, opt.beta1, opt.beta2, opt.clip_norm) == (0.01, 0.9, 0.999, None)


@pytest.mark.parametrize("name", sorted(build.OPTIMIZERS))
def test_clip_norm_reaches_every_optimizer(compose, name):
    cfg = compose(f"optimizer={name}", "optimizer.clip_norm=1.5")
    validate(cfg)
    assert build.build_optimizer(cfg).clip_norm == 1.5      # (None by default: test_adamw_...)


def test_per_step_schedules_and_their_options(compose):
    opt = build.build_optimizer(compose("schedule=cosine", "schedule.warmup_steps=5",
                                        "schedule.min_lr=1e-5"))
    assert isinstance(opt.schedule, CosineDecay) and opt.per_step
    assert (opt.schedule.warmup_steps, opt.schedule.min_lr) == (5, 1e-5)
    opt = build.build_optimizer(compose("schedule=one_cycle", "schedule.pct_start=0.4"))
    assert isinstance(opt.schedule, OneCycle) and opt.schedule.pct_start == 0.4
    assert (opt.schedule.div_factor, opt.schedule.final_div_factor) == (25.0, 1e4)


@pytest.mark.parametrize("overrides, message", [
    (["schedule=cosine", "schedule.min_lr=-1"], "schedule.min_lr must be a finite number >= 0, got -1.0"),
    (["schedule=cosine", "schedule.warmup_steps=-2"], "schedule.warmup_steps must be an integer >= 0"),
    (["schedule=cosine", "schedule.warmup_steps=1.5"], "schedule.warmup_steps must be an integer"),
    (["schedule=one_cycle", "schedule.pct_start=1.5"], r"schedule.pct_start must lie in \(0, 1\)"),
    (["optimizer.clip_norm=0"], "optimizer.clip_norm must be a finite number > 0, got 0.0"),
    (["optimizer=adamw", "optimizer.clip_norm=-1"], "optimizer.clip_norm must be a finite number > 0"),
])
def test_bad_values_name_the_key(compose, overrides, message):
    cfg = compose(*overrides)
    with pytest.raises(ConfigError, match=message):
        validate(cfg)
        build.build_optimizer(cfg)


def test_init_and_activation_options_reach_the_network(compose):
    cfg = compose("model.init=normal", "+model.init_kwargs.std=0.5", "model.activation=leaky_relu",
                  "+model.activation_kwargs.slope=0.2", "model.hidden=[200]")
    validate(cfg)
    net = build.build_model(cfg, n_inputs=100, n_outputs=2)
    assert net.init_kwargs == {"std": 0.5} and net.activation_kwargs == {"slope": 0.2}
    assert net.weights[0].std() == pytest.approx(0.5, rel=0.02)
    plain = build.build_model(compose("model.init=normal", "model.hidden=[200]"), 100, 2)
    assert plain.weights[0].std() == pytest.approx(0.01, rel=0.02)    # the init's own default
    X = -np.ones((1, 100))
    slopes = {}
    for slope in (0.2, 0.01):   # a negative pre-activation: the slope changes the output
        c = compose("model.activation=leaky_relu", f"+model.activation_kwargs.slope={slope}")
        slopes[slope] = build.build_model(c, 100, 2).predict_proba(X)
    assert not np.allclose(slopes[0.2], slopes[0.01])


@pytest.mark.parametrize("overrides, message", [
    (["model.init=normal", "+model.init_kwargs.sd=1"], "unknown option 'sd' for init 'normal'; valid options: std"),
    (["+model.init_kwargs.std=1"], "unknown option 'std' for init 'he'"),
    (["+model.activation_kwargs.slope=0.2"], "unknown option 'slope' for activation 'relu'"),
    (["model.init_kwargs=5"], "model.init_kwargs must be a mapping of options"),
])
def test_bad_model_options_are_refused(compose, overrides, message):
    with pytest.raises(ConfigError, match=message):
        build.build_model(compose(*overrides), n_inputs=4, n_outputs=2)
