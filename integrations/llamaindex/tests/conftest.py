"""Fixtures of the LlamaIndex integration tests (names prefixed `li_`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # li_scripted, whatever the rootdir

from li_scripted import ScriptedLLM, ScriptedToolLLM  # noqa: E402
from llama_index.core.instrumentation import get_dispatcher  # noqa: E402
from llama_index.core.instrumentation.event_handlers import BaseEventHandler  # noqa: E402
from llama_index.llms.sls_router import SmartRouterLLM  # noqa: E402

from sls_router.testing import new_database, onnx_cache_dir, pg_server  # noqa: E402, F401 (this folder alone)

ROUTER_OPTIONS = dict(embedder="hashing", background_updates=False, random_state=0)


@pytest.fixture
def li_small() -> ScriptedLLM:
    return ScriptedLLM(name="small")


@pytest.fixture
def li_large() -> ScriptedLLM:
    return ScriptedLLM(name="large", report_usage=False)


@pytest.fixture
def li_tooly() -> ScriptedToolLLM:
    return ScriptedToolLLM(name="tooly")


@pytest.fixture
def li_llm(li_small, li_large):
    """Two plain scripted models behind the router, hashing embedder, no threads."""
    llm = SmartRouterLLM.from_llms(
        {"small": li_small, "large": li_large},
        prices={"small": (0.1, 0.2), "large": (5.0, 15.0)},
        **ROUTER_OPTIONS,
    )
    yield llm
    llm.close()


@pytest.fixture
def li_tool_llm(li_small, li_tooly):
    """A cheap model without tools and a pricier tool-capable one."""
    llm = SmartRouterLLM.from_llms(
        {"small": li_small, "tooly": li_tooly},
        prices={"small": (0.1, 0.2), "tooly": (3.0, 9.0)},
        **ROUTER_OPTIONS,
    )
    yield llm
    llm.close()


class _Collector(BaseEventHandler):
    events: list = []

    def handle(self, event, **kwargs) -> None:
        self.events.append(event)

    def of(self, cls) -> list:
        return [e for e in self.events if isinstance(e, cls)]


@pytest.fixture
def li_events():
    """Every instrumentation event dispatched during the test."""
    root = get_dispatcher()
    collector = _Collector(events=[])
    root.add_event_handler(collector)
    yield collector
    root.event_handlers = [h for h in root.event_handlers if h is not collector]


@pytest.fixture
def li_handlers():
    """Attach handlers to the root dispatcher for one test only."""
    root = get_dispatcher()
    attached = []

    def attach(handler):
        root.add_event_handler(handler)
        attached.append(handler)
        return handler

    yield attach
    root.event_handlers = [h for h in root.event_handlers if all(h is not a for a in attached)]
