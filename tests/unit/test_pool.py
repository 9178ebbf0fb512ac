"""What every front end's `from_llms` shares: prices made ModelSpecs, a router from a pool
and a `state`."""

from __future__ import annotations

import pytest

from sls_router import CallableBackend, ConfigurationError, ModelSpec, Request, SmartRouter
from sls_router.pool import check_prices, priced_spec, router_for

OPTIONS = dict(embedder="hashing", background_updates=False, random_state=0)


def _pool():
    return [(ModelSpec("echo", 1.0, 2.0), CallableBackend(lambda r: f"echo {r.text}"))]


def test_prices_must_match_the_models_one_to_one():
    check_prices(["a", "b"], {"a": (0, 0), "b": (1, 2)})
    with pytest.raises(ConfigurationError, match="no price for model 'b'"):
        check_prices(["a", "b"], {"a": (0, 0)})
    with pytest.raises(ConfigurationError, match=r"prices name \['c'\]"):
        check_prices(["a"], {"a": (0, 0), "c": (1, 1)})
    with pytest.raises(ConfigurationError, match="must be a dict"):
        check_prices(["a"], [(0, 0)])


def test_a_price_becomes_a_spec_and_a_spec_is_taken_as_it_is():
    spec = priced_spec("a", (0.15, 0.6), supports_tools=True, context_window=0)
    assert (
        spec.input_per_mtok,
        spec.output_per_mtok,
        spec.supports_tools,
        spec.context_window,
    ) == (0.15, 0.6, True, 1)
    given = ModelSpec("a", 1, 2, tier=70)
    assert priced_spec("a", given, supports_tools=False) is given
    for bad in [(1,), "0.1,0.2", (True, 1), (1, float("nan"))]:
        with pytest.raises(ConfigurationError):
            priced_spec("a", bad, supports_tools=False)
    with pytest.raises(ConfigurationError, match="claim tools only"):
        priced_spec("a", ModelSpec("a", supports_tools=True), supports_tools=False)


def test_router_for_without_state_is_fresh_and_with_a_directory_keeps_it(tmp_path):
    fresh = router_for(_pool(), **OPTIONS)
    assert isinstance(fresh, SmartRouter) and fresh.store is None
    fresh.close()
    first = router_for(_pool(), tmp_path / "state", **OPTIONS)
    first.complete(Request(prompt="What is two plus two?"))
    first.save()
    first.close()
    again = router_for(_pool(), tmp_path / "state", **OPTIONS)
    assert again.complete(Request(prompt="What is two plus two?")).cache_hit
    again.close()
