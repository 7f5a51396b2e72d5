"""One home per default (issue #31): the switching inputs' defaults live in ``decision.defaults.DEFAULTS``, and the
CLI (its help and its parsed defaults), the JSON schema, ``SwitchInputs``, the controller, the tuner's start values,
the demo and the policy simulator read theirs from it. Torch-free: nothing here loads a model."""

from __future__ import annotations

import argparse
import inspect
import math
from dataclasses import fields

import pytest

from stmltm_nb.decision.defaults import DEFAULTS, Defaults
from stmltm_nb.decision.inputs import FIELDS


def _attr(path: str) -> str:
    """The :class:`Defaults` field of a schema path (``cost.kappa1`` → kappa1, ``recall.kind`` → recall_kind)."""
    if path == "recall.kind" or path.startswith("retrieval."):
        return path.replace(".", "_")
    return path.split(".")[-1]


def _subparser(name: str) -> argparse.ArgumentParser:
    from stmltm_nb.apps.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _action(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parser._actions if flag in a.option_strings)


def test_the_schema_takes_every_default_from_the_one_home():
    with_default = [f for f in FIELDS if f.default is not None]
    assert {f.path: f.default for f in with_default} == {f.path: getattr(DEFAULTS, _attr(f.path)) for f in with_default}
    # every default is used by the schema, but ε (the logged textbook m*'s error rate: no flag)
    assert {_attr(f.path) for f in with_default} == {f.name for f in fields(Defaults)} - {"epsilon"}


def test_switch_inputs_and_the_schema_agree():
    from stmltm_nb.decision.inputs import inputs_from
    from stmltm_nb.decision.switching import SwitchInputs

    x = SwitchInputs(n=DEFAULTS.n, Q=DEFAULTS.Q, c_upd=DEFAULTS.c_upd, r_cart=DEFAULTS.r_cart)
    assert inputs_from({}) == x  # no JSON, no flag: the dataclass's own defaults
    for f in fields(Defaults):
        if f.name.startswith("retrieval_"):
            continue  # the retrieval arm has no default: it enters only with a measured recall
        if f.name in ("kappa0", "kappa1", "kappa2"):
            got = getattr(x.cost, f.name)
        elif f.name in ("recall_kind", "q0", "rho", "nu", "n50", "k"):
            got = getattr(x.recall, "kind" if f.name == "recall_kind" else f.name)
        else:
            got = getattr(x, f.name)
        assert got == getattr(DEFAULTS, f.name), f.name


def test_the_cli_help_and_parsed_defaults_come_from_the_one_home():
    from stmltm_nb.apps.demo import DEMO, DEMO_FULL
    from stmltm_nb.decision.inputs import given_flags, inputs_from

    decide = _subparser("decide")
    for f in FIELDS:
        if f.default is not None:
            assert f"(default {getattr(DEFAULTS, _attr(f.path))})" in _action(decide, f.flag).help, f.flag
    args = decide.parse_args([])
    assert given_flags(args) == {} and inputs_from(None, given_flags(args)).lam == DEFAULTS.lam
    assert "the same λ" in _action(decide, "--lam").help
    stream = _subparser("stream")
    lam, tau = _action(stream, "--lam"), _action(stream, "--tau")
    assert (lam.default, tau.default) == (DEFAULTS.lam, DEFAULTS.tau)
    assert f"(default {DEFAULTS.lam}" in lam.help and f"(default {DEFAULTS.tau})" in tau.help
    demo = _subparser("demo")
    assert _action(demo, "--facts").default is None and _action(demo, "--steps").default is None  # the size's
    assert f"default {DEMO.facts}; {DEMO_FULL.facts} with --full" in _action(demo, "--facts").help
    assert f"default {DEMO.steps}; {DEMO_FULL.steps} with --full" in _action(demo, "--steps").help


def test_the_controller_config_takes_its_switching_defaults_from_the_one_home():
    from stmltm_nb.decision.controller_config import ControllerConfig
    from stmltm_nb.decision.switching import default_cost, default_recall

    c = ControllerConfig()
    assert (c.lam, c.eta, c.gamma, c.tau, c.delta) == (DEFAULTS.lam, DEFAULTS.eta, DEFAULTS.gamma, DEFAULTS.tau,
                                                       DEFAULTS.delta)
    assert (c.q_cart_prior, c.c_upd_prior, c.r_cart_prior) == (DEFAULTS.q_cart, DEFAULTS.c_upd, DEFAULTS.r_cart)
    assert c.cost == default_cost() and c.recall == default_recall()


def test_the_tuner_starts_from_the_one_home():
    from curves_v2 import v2_curves

    from stmltm_nb.apps.tuner import SLIDERS, presets, start_values

    start = start_values()
    assert set(start) == set(SLIDERS)
    shared = [k for k in start if hasattr(DEFAULTS, k)]
    assert set(shared) == {"n", "Q", "c_upd", "r_cart", "kappa1", "lam", "q_cart", "gamma", "tau", "eta"}
    for k in shared:  # log sliders hold exponents of 10
        assert (10 ** start[k] if SLIDERS[k][4] else start[k]) == pytest.approx(getattr(DEFAULTS, k)), k
    for name, preset in presets(v2_curves()).items():  # the measured presets keep the rule's knobs and situation
        for k in ("n", "lam", "gamma", "tau", "eta"):
            assert preset[k] == getattr(DEFAULTS, k), (name, k)
        assert preset["Q"] == pytest.approx(math.log10(DEFAULTS.Q))


def test_the_demo_and_the_simulator_price_with_the_one_lambda():
    from stmltm_nb.apps.demo import demo_decision
    from stmltm_nb.decision.curves import measured_inputs
    from stmltm_nb.decision.policies import World, world_from_curves

    demo = inspect.signature(demo_decision).parameters
    assert {k: demo[k].default for k in ("Q", "lam", "eta", "gamma")} == {
        "Q": DEFAULTS.Q, "lam": DEFAULTS.lam, "eta": DEFAULTS.eta, "gamma": DEFAULTS.gamma}
    mi = inspect.signature(measured_inputs).parameters
    assert (mi["eta"].default, mi["gamma"].default) == (DEFAULTS.eta, DEFAULTS.gamma)
    assert inspect.signature(world_from_curves).parameters["lam"].default == DEFAULTS.lam
    assert {f.name: f.default for f in fields(World) if f.name in ("lam", "Delta")} == {
        "lam": DEFAULTS.lam, "Delta": DEFAULTS.Delta}


def test_the_defaults_are_frozen_and_valid():
    from stmltm_nb.decision.switching import SwitchInputs, validate

    with pytest.raises(AttributeError):
        DEFAULTS.lam = 1.0  # type: ignore[misc]
    validate(SwitchInputs(n=DEFAULTS.n, Q=DEFAULTS.Q, c_upd=DEFAULTS.c_upd, r_cart=DEFAULTS.r_cart))
