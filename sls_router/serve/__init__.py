"""`sls-router serve`: an OpenAI-compatible HTTP front end over the router, with
Prometheus metrics and a dashboard (the `serve` extra).

    config.py         pool.toml, read and checked (errors name the line and the fix)
    pool.py           the config's models as (ModelSpec, Backend) pairs
    openai_backend.py an OpenAI-compatible endpoint as a backend (official client)
    openai_shapes.py  OpenAI's request, completion, chunk and error shapes <-> engine types
    metrics.py        Prometheus counters and the dashboard's series
    app.py            the FastAPI app: routes, tenants, errors, shutdown
    static/           the dashboard page (plain JS and SVG, no CDN)

Everything here translates; the router decides.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DependencyError

if TYPE_CHECKING:
    from .app import Server

__all__ = ["open_server", "run"]


def _require_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise DependencyError(
            f"sls-router serve needs the serve extra ({exc.name} is missing): "
            "pip install 'sls-router[serve]'."
        ) from None


def open_server(
    config: str | Path, state: str | None = None, *, bucket_s: float = 10.0, **router_options: Any
) -> Server:
    """The config read and checked, its models reached and the router opened (from
    `state`: a directory or a postgresql:// URL), before any socket is opened.
    `bucket_s`: the dashboard's time step; `router_options` override the file's."""
    _require_extra()
    from ..pool import router_for
    from .app import Server
    from .config import load_config
    from .metrics import Metrics
    from .pool import build_pool

    checked = load_config(config)
    pool = build_pool(checked)
    router = router_for(pool, state, **{**checked.router_options, **router_options})
    reference = (
        router.specs[checked.reference_model] if checked.reference_model is not None else None
    )
    return Server(
        router,
        checked,
        Metrics(router, reference, bucket_s=bucket_s),
        save_on_exit=state is not None,
    )


def run(server: Server, host: str = "127.0.0.1", port: int = 8000, **uvicorn_options: Any) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests finish, then the state is saved."""
    import uvicorn

    from .app import create_app

    options = {
        "log_level": "info",
        "timeout_graceful_shutdown": 30,
        "timeout_keep_alive": 30,  # longer than clients' pools keep idle connections
        **uvicorn_options,
    }
    uvicorn.run(create_app(server), host=host, port=port, **options)
