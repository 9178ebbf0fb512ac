"""From a front end's models to a router: prices checked and made ModelSpecs, then the
router over the pool, new or kept in a `state`.

Every front end's `from_llms` takes `{name: model}` and `prices={name: (in, out)}`; the
rules for those prices and for `state` live here so the adapters cannot diverge. What
is framework-specific (wrapping a model as a backend, telling whether it takes tools)
stays in the adapter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .backends import Backend
from .errors import ConfigurationError
from .router import SmartRouter
from .types import ModelSpec

if TYPE_CHECKING:
    from .store import Store


def check_prices(names: Sequence[str], prices: object) -> None:
    """Every model of a framework pool has a price, and every price names a model."""
    if not isinstance(prices, Mapping):
        raise ConfigurationError(
            "prices must be a dict {name: (input_usd_per_mtok, "
            "output_usd_per_mtok)}, USD per million tokens, one per model."
        )
    missing = [n for n in names if n not in prices]
    if missing:
        name = missing[0]
        raise ConfigurationError(
            f"no price for model {name!r}: add prices[{name!r}] = "
            "(input_usd_per_mtok, output_usd_per_mtok), e.g. (0.15, 0.60), "
            "or (0, 0) for a free local model."
        )
    unknown = sorted(set(prices) - set(names))
    if unknown:
        raise ConfigurationError(
            f"prices name {unknown}, but no such LLM was given (the models "
            f"are {sorted(names)}): fix the names."
        )


def priced_spec(
    name: str, price: object, *, supports_tools: bool, context_window: int = 8192
) -> ModelSpec:
    """The ModelSpec of a framework model from its price `(input_per_mtok,
    output_per_mtok)`; a ModelSpec given as the price is taken as it is (tier, timeouts)."""
    if isinstance(price, ModelSpec):
        if price.name != name or (price.supports_tools and not supports_tools):
            raise ConfigurationError(
                f"the ModelSpec priced for {name!r} must be named {name!r} "
                "and claim tools only for a function-calling model."
            )
        return price
    if (
        not isinstance(price, Sequence)
        or isinstance(price, str)
        or len(price) != 2
        or not all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in price)
    ):
        raise ConfigurationError(
            f"price of {name!r} is {price!r}; pass (input_usd_per_mtok, "
            "output_usd_per_mtok), e.g. (0.15, 0.60)."
        )
    return ModelSpec(
        name=name,
        input_per_mtok=float(price[0]),
        output_per_mtok=float(price[1]),
        supports_tools=supports_tools,
        context_window=max(1, int(context_window)),
    )


def router_for(
    pool: Sequence[tuple[ModelSpec, Backend]],
    state: str | Path | Store | None = None,
    **options: Any,
) -> SmartRouter:
    """A router over `pool`: a fresh one in memory, or, given a `state`, the one kept there
    (`SmartRouter.open`: a directory, a postgresql:// URL or a Store). `options` are
    SmartRouter options."""
    if state is None:
        return SmartRouter(pool, **options)
    return SmartRouter.open(state, pool, **options)
