"""The routing metadata every front end attaches to an answer: one set of keys."""

from __future__ import annotations

import json

from sls_router import Response, Usage
from sls_router.metadata import KEYS, REQUEST_ID_KEY, request_id_of, routing_metadata


def test_routing_metadata_has_every_documented_key_and_is_json_safe():
    response = Response(
        text="42",
        model="small",
        cache_hit=False,
        usage=Usage(10, 2),
        cost_usd=0.003,
        latency_s=0.7,
        predicted_quality=0.9,
        request_id="r-1",
        tried=("large", "small"),
        latency_modelled=True,
    )
    metadata = routing_metadata(response)
    assert tuple(metadata) == KEYS
    assert metadata == {
        "sls_model": "small",
        "sls_cache_hit": False,
        "sls_cost_usd": 0.003,
        "sls_latency_s": 0.7,
        "sls_latency_modelled": True,
        "sls_predicted_quality": 0.9,
        "sls_request_id": "r-1",
        "sls_tried": ["large", "small"],
    }
    assert json.loads(json.dumps(metadata)) == metadata
    assert request_id_of(metadata) == "r-1"


def test_request_id_of_answers_sls_router_did_not_serve_is_none():
    assert request_id_of(None) is None
    assert request_id_of({"model_name": "gpt"}) is None
    assert request_id_of({REQUEST_ID_KEY: 42}) is None
