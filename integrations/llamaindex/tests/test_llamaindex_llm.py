"""SmartRouterLLM as a LlamaIndex LLM: cache, streaming, async, scoping, errors, sources."""

from __future__ import annotations

import asyncio
import json
import math
import time

import pytest
from li_scripted import ScriptedLLM, ScriptedToolLLM
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index.llms.sls_router import SmartRouterLLM

from sls_router import (
    CallableBackend,
    ConfigurationError,
    InvalidInputError,
    ModelSpec,
    SmartRouter,
    UnknownEntryError,
)
from sls_router.metadata import KEYS
from sls_router.types import CHARS_PER_TOKEN

OPTIONS = dict(embedder="hashing", background_updates=False, random_state=0)


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


def calls(*llms) -> int:
    return sum(llm.calls for llm in llms)


def test_metadata_describes_the_pool(li_small, li_tooly):
    li_small.context = 1000
    llm = SmartRouterLLM.from_llms(
        {"small": li_small, "tooly": li_tooly}, prices={"small": (0, 0), "tooly": (1, 2)}, **OPTIONS
    )
    meta = llm.metadata
    assert meta.context_window == min(1000, li_tooly.metadata.context_window)
    assert meta.num_output == min(li_small.metadata.num_output, li_tooly.metadata.num_output)
    assert meta.is_function_calling_model and meta.is_chat_model
    assert "small" in meta.model_name and "tooly" in meta.model_name
    plain = SmartRouterLLM.from_llms({"small": li_small}, prices={"small": (0, 0)}, **OPTIONS)
    assert not plain.metadata.is_function_calling_model


def test_second_identical_chat_is_a_free_cache_hit(li_llm, li_small, li_large):
    first = li_llm.chat(user("What is the boiling point of water?"))
    assert set(first.additional_kwargs) == set(KEYS)  # the engine's one set of keys
    assert first.additional_kwargs["sls_cache_hit"] is False
    assert first.additional_kwargs["sls_cost_usd"] > 0
    before = calls(li_small, li_large)
    second = li_llm.chat(user("What is the boiling point of water?"))
    assert second.additional_kwargs["sls_cache_hit"] is True
    assert second.additional_kwargs["sls_cost_usd"] == 0
    assert second.message.content == first.message.content
    assert second.additional_kwargs["sls_model"] == first.additional_kwargs["sls_model"]
    assert second.additional_kwargs["sls_request_id"] != first.additional_kwargs["sls_request_id"]
    assert calls(li_small, li_large) == before  # no model was called


def test_reported_usage_is_used_and_missing_usage_estimated(li_small, li_large):
    for name, model, reports in (("small", li_small, True), ("large", li_large, False)):
        llm = SmartRouterLLM.from_llms({name: model}, prices={name: (2.0, 8.0)}, **OPTIONS)
        messages = user("Name three primary colours.")
        response = llm.chat(messages)
        usage = response.raw["usage"]
        text = response.message.content
        if reports:  # ScriptedLLM counts words
            assert usage["completion_tokens"] == len(text.split())
        else:  # the adapter's estimate: characters / 4, rounded up
            assert usage["completion_tokens"] == math.ceil(len(text) / CHARS_PER_TOKEN)
            assert usage["prompt_tokens"] == math.ceil(
                len("user: Name three primary colours.") / CHARS_PER_TOKEN
            )
        expected = (usage["prompt_tokens"] * 2.0 + usage["completion_tokens"] * 8.0) / 1e6
        assert response.additional_kwargs["sls_cost_usd"] == pytest.approx(expected)


def test_llamaindex_token_counter_sees_usage_once(li_small):
    from llama_index.core.callbacks import CallbackManager, TokenCountingHandler

    llm = SmartRouterLLM.from_llms({"small": li_small}, prices={"small": (1, 1)}, **OPTIONS)
    counter = TokenCountingHandler()
    llm.callback_manager = CallbackManager([counter])
    response = llm.chat(user("one two three"))
    chunks = list(llm.stream_chat(user("four five six seven")))
    usage = [response.raw["usage"], chunks[-1].raw["usage"]]
    assert counter.prompt_llm_token_count == sum(u["prompt_tokens"] for u in usage)
    assert counter.completion_llm_token_count == sum(u["completion_tokens"] for u in usage)
    assert all(c.raw is None for c in chunks[:-1])  # usage rides on the last chunk only


def test_stream_and_chat_give_the_same_text_fresh_or_cached(li_llm):
    chunks = list(li_llm.stream_chat(user("Explain photosynthesis briefly.")))
    streamed = "".join(c.delta or "" for c in chunks)
    assert chunks[-1].message.content == streamed
    assert chunks[-1].additional_kwargs["sls_cache_hit"] is False
    assert all("sls_model" not in c.additional_kwargs for c in chunks[:-1])  # metadata once
    cached = li_llm.chat(user("Explain photosynthesis briefly."))
    assert cached.additional_kwargs["sls_cache_hit"] and cached.message.content == streamed
    again = list(li_llm.stream_chat(user("Explain photosynthesis briefly.")))
    assert len([c for c in again if c.delta]) > 1  # the cached answer streams in pieces
    assert "".join(c.delta or "" for c in again) == streamed
    assert again[-1].additional_kwargs["sls_cache_hit"] is True
    assert again[-1].additional_kwargs["sls_cost_usd"] == 0
    assert again[-1].raw["usage"]["total_tokens"] == 0


@pytest.mark.asyncio
async def test_fresh_stream_and_fresh_chat_agree(li_small, li_tooly):
    for name, model in (("small", li_small), ("tooly", li_tooly)):
        llm = SmartRouterLLM.from_llms({name: model}, prices={name: (1, 1)}, **OPTIONS)
        messages = user("Describe the water cycle.")
        sampled = {"temperature": 0.7}  # sampled requests are not cached: every call is fresh
        texts = {
            llm.chat(messages, **sampled).message.content,
            "".join(c.delta or "" for c in llm.stream_chat(messages, **sampled)),
            (await llm.achat(messages, **sampled)).message.content,
            "".join([c.delta or "" async for c in await llm.astream_chat(messages, **sampled)]),
        }
        assert len(texts) == 1, texts


def test_completion_api_sync_async_and_streaming(li_llm):
    first = li_llm.complete("Capital of Japan?")
    assert first.additional_kwargs["sls_cache_hit"] is False
    streamed = list(li_llm.stream_complete("Capital of Japan?"))
    assert "".join(c.delta or "" for c in streamed) == first.text
    assert streamed[-1].additional_kwargs["sls_cache_hit"] is True

    async def run():
        hit = await li_llm.acomplete("Capital of Japan?")
        pieces = [c async for c in await li_llm.astream_complete("Capital of Japan?")]
        return hit, pieces

    hit, pieces = asyncio.run(run())
    assert hit.text == first.text and hit.additional_kwargs["sls_cache_hit"]
    assert "".join(c.delta or "" for c in pieces) == first.text


@pytest.mark.asyncio
async def test_async_chat_and_stream(li_llm):
    fresh = await li_llm.achat(user("Who painted the Mona Lisa?"))
    pieces = [c async for c in await li_llm.astream_chat(user("Who painted the Mona Lisa?"))]
    assert "".join(c.delta or "" for c in pieces) == fresh.message.content
    assert pieces[-1].additional_kwargs["sls_cache_hit"] is True


@pytest.mark.asyncio
async def test_concurrent_async_calls_overlap(li_small):
    li_small.delay = 0.3
    llm = SmartRouterLLM.from_llms({"small": li_small}, prices={"small": (0.1, 0.1)}, **OPTIONS)
    questions = [f"Question number {i}: how far is planet {i}?" for i in range(6)]
    started = time.perf_counter()
    answers = await asyncio.gather(*(llm.achat(user(q)) for q in questions))
    wall = time.perf_counter() - started
    assert li_small.max_in_flight > 1
    assert wall < 0.3 * len(questions) * 0.7  # well below one call after the other
    for question, answer in zip(questions, answers):  # each got its own answer
        assert question[:40] in answer.message.content
        assert answer.additional_kwargs["sls_cache_hit"] is False
    assert len({a.additional_kwargs["sls_request_id"] for a in answers}) == len(questions)


def test_history_and_system_prompt_scope_the_cache(li_llm):
    question = ChatMessage(role="user", content="And what about tomorrow?")
    history_a = [
        ChatMessage(role="user", content="Weather in Oslo today?"),
        ChatMessage(role="assistant", content="Snow."),
    ]
    history_b = [
        ChatMessage(role="user", content="Weather in Cairo today?"),
        ChatMessage(role="assistant", content="Sunny."),
    ]
    first = li_llm.chat([*history_a, question])
    assert not li_llm.chat([*history_b, question]).additional_kwargs["sls_cache_hit"]
    assert not li_llm.chat([question]).additional_kwargs["sls_cache_hit"]
    system = ChatMessage(role="system", content="Answer in French.")
    assert not li_llm.chat([system, *history_a, question]).additional_kwargs["sls_cache_hit"]
    same = li_llm.chat([*history_a, question])
    assert same.additional_kwargs["sls_cache_hit"] and same.message.content == first.message.content


def test_turns_after_the_question_change_the_scope(li_llm):
    question = ChatMessage(role="user", content="How many moons has Mars?")
    li_llm.chat([question])
    after = [
        question,
        ChatMessage(
            role="assistant",
            content="",
            additional_kwargs={
                "tool_calls": [{"id": "c1", "function": {"name": "lookup", "arguments": "{}"}}]
            },
        ),
        ChatMessage(role="tool", content="2", additional_kwargs={"tool_call_id": "c1"}),
    ]
    assert not li_llm.chat(after).additional_kwargs["sls_cache_hit"]
    assert li_llm.chat(after).additional_kwargs["sls_cache_hit"]


def test_a_cached_answer_is_served_only_in_its_own_context(li_llm, li_small, li_large):
    question = ChatMessage(role="user", content="What is the weather in Paris right now?")
    after = [
        question,
        ChatMessage(
            role="assistant",
            content="",
            additional_kwargs={
                "tool_calls": [
                    {"id": "c1", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
                ]
            },
        ),
        ChatMessage(role="tool", content="18C and sunny", additional_kwargs={"tool_call_id": "c1"}),
    ]
    first = li_llm.chat(after)
    assert not first.additional_kwargs["sls_cache_hit"]
    # the answer written after the tool's result is not served to the question alone
    assert not li_llm.chat([question]).additional_kwargs["sls_cache_hit"]
    system = ChatMessage(role="system", content="Answer in French.")
    assert not li_llm.chat([system, *after]).additional_kwargs["sls_cache_hit"]
    earlier = [
        ChatMessage(role="user", content="Weather in Oslo?"),
        ChatMessage(role="assistant", content="Snow."),
    ]
    assert not li_llm.chat([*earlier, *after]).additional_kwargs["sls_cache_hit"]
    before = calls(li_small, li_large)
    same = li_llm.chat(after)
    assert same.additional_kwargs["sls_cache_hit"] and same.message.content == first.message.content
    assert calls(li_small, li_large) == before


def test_templated_prompts_cache_on_the_query_and_scope_on_the_context(li_llm):
    template = PromptTemplate("Context:\n{context_str}\nQuery: {query_str}\nAnswer: ")
    context = "The Nile is about 6650 km long. " * 20
    first = li_llm.predict(template, context_str=context, query_str="How long is the Nile?")
    request = li_llm._chat_request(
        li_llm._get_messages(template, context_str=context, query_str="How long is the Nile?"), {}
    )
    assert request.query == "How long is the Nile?"  # embedded: the query, not the context
    hit = li_llm.predict(template, context_str=context, query_str="How long is the Nile?")
    assert hit == first
    other = li_llm.chat(
        li_llm._get_messages(
            template, context_str=context + "Updated.", query_str="How long is the Nile?"
        )
    )
    assert not other.additional_kwargs["sls_cache_hit"]  # another context, another scope
    partial = template.partial_format(query_str="How long is the Nile?")  # as synthesizers do
    again = li_llm.chat(li_llm._get_messages(partial, context_str=context))
    assert again.additional_kwargs["sls_cache_hit"] and again.message.content == first


def test_sampled_requests_are_not_cached(li_llm, li_small, li_large):
    li_llm.chat(user("Write a haiku about rain."), temperature=0.9)
    before = calls(li_small, li_large)
    again = li_llm.chat(user("Write a haiku about rain."), temperature=0.9)
    assert not again.additional_kwargs["sls_cache_hit"]
    assert calls(li_small, li_large) == before + 1


def test_feedback_reaches_the_router(li_llm):
    response = li_llm.chat(user("Is a tomato a fruit?"))
    outcomes = len(li_llm.router.learner.outcomes)
    li_llm.feedback(response.additional_kwargs["sls_request_id"], 1.0)
    assert len(li_llm.router.learner.outcomes) == outcomes + 1
    hit = li_llm.chat(user("Is a tomato a fruit?"))
    assert hit.additional_kwargs["sls_cache_hit"]
    li_llm.feedback(hit.additional_kwargs["sls_request_id"], 0.0)  # the served hit was wrong
    assert li_llm.router.cache.stats().wrong_hits == 1
    with pytest.raises(UnknownEntryError, match="request_id of a Response"):
        li_llm.feedback("no-such-request", 1.0)
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        li_llm.feedback(response.additional_kwargs["sls_request_id"], 2.0)
    with pytest.raises(InvalidInputError, match="request_id"):
        li_llm.feedback(None, 1.0)


def test_bad_input_gets_clear_errors_and_loses_nothing(li_llm):
    li_llm.chat(user("What is the speed of light?"))
    with pytest.raises(InvalidInputError, match="empty message list"):
        li_llm.chat([])
    image = ChatMessage(
        role="user",
        blocks=[TextBlock(text="what is this?"), ImageBlock(url="http://example.com/cat.png")],
    )
    with pytest.raises(InvalidInputError, match="image"):
        li_llm.chat([image])
    with pytest.raises(InvalidInputError, match="image"):
        li_llm.stream_chat([image])  # at the call, not in the middle of a stream
    with pytest.raises(InvalidInputError, match="prompt must be a str"):
        li_llm.complete(["not", "a", "prompt"])
    tool = FunctionTool.from_defaults(fn=lambda a: a, name="echo", description="Echo a.")
    with pytest.raises(InvalidInputError, match="no model of the pool supports tools"):
        li_llm.chat_with_tools([tool], user_msg="echo 1")
    with pytest.raises(InvalidInputError, match="no tool call"):
        li_llm.get_tool_calls_from_response(li_llm.chat(user("Hi")))
    assert li_llm.chat(user("What is the speed of light?")).additional_kwargs["sls_cache_hit"]


def test_from_llms_refuses_bad_pools(li_small, li_large):
    with pytest.raises(ConfigurationError, match=r"no price for model 'large'.*\(0, 0\)"):
        SmartRouterLLM.from_llms(
            {"small": li_small, "large": li_large}, prices={"small": (1, 1)}, **OPTIONS
        )
    with pytest.raises(ConfigurationError, match="not a LlamaIndex LLM"):
        SmartRouterLLM.from_llms({"small": "gpt-4o"}, prices={"small": (1, 1)}, **OPTIONS)
    with pytest.raises(ConfigurationError, match="no such LLM"):
        SmartRouterLLM.from_llms(
            {"small": li_small}, prices={"small": (1, 1), "smal": (1, 1)}, **OPTIONS
        )
    with pytest.raises(ConfigurationError, match="input_usd_per_mtok"):
        SmartRouterLLM.from_llms({"small": li_small}, prices={"small": 0.5}, **OPTIONS)
    with pytest.raises(ConfigurationError, match="finite number >= 0"):
        SmartRouterLLM.from_llms({"small": li_small}, prices={"small": (-1, 1)}, **OPTIONS)
    with pytest.raises(ConfigurationError, match="function-calling"):
        SmartRouterLLM.from_llms(
            {"small": li_small},
            prices={"small": ModelSpec("small", supports_tools=True)},
            **OPTIONS,
        )
    with pytest.raises(ConfigurationError, match="non-empty dict"):
        SmartRouterLLM.from_llms({}, prices={}, **OPTIONS)
    with pytest.raises(ConfigurationError, match="needs a SmartRouter"):
        SmartRouterLLM(router="router")


def test_around_an_existing_router():
    router = SmartRouter(
        [
            (
                ModelSpec("echo", input_per_mtok=1.0, output_per_mtok=1.0),
                CallableBackend(lambda r: f"echo: {r.embed_text}"),
            )
        ],
        **OPTIONS,
    )
    llm = SmartRouterLLM(router=router, namespace="tenant-a")
    assert llm.chat(user("ping")).message.content == "echo: ping"
    other_tenant = SmartRouterLLM(router=router, namespace="tenant-b")
    assert not other_tenant.chat(user("ping")).additional_kwargs["sls_cache_hit"]
    assert llm.chat(user("ping")).additional_kwargs["sls_cache_hit"]


def test_from_replay_serves_recorded_answers_and_keeps_its_state(tmp_path):
    data = tmp_path / "tiny.jsonl"
    records = [
        {
            "id": f"r{i}",
            "prompt": f"Classify ticket {i}: printer on fire",
            "responses": {
                "cheap": {
                    "output": f"hardware-{i}",
                    "score": 1.0,
                    "input_tokens": 10,
                    "output_tokens": 2,
                    "cost": 1e-6,
                },
                "big": {
                    "output": f"hardware-{i}",
                    "score": 1.0,
                    "input_tokens": 10,
                    "output_tokens": 2,
                    "cost": 5e-5,
                },
            },
        }
        for i in range(3)
    ]
    data.write_text("\n".join(json.dumps(r) for r in records))
    (tmp_path / "tiny.models.json").write_text(
        json.dumps(
            {
                "cheap": {"input_per_mtok": 0.1, "output_per_mtok": 0.1},
                "big": {"input_per_mtok": 5, "output_per_mtok": 5},
            }
        )
    )
    llm = SmartRouterLLM.from_replay(data, state=tmp_path / "state", **OPTIONS)
    response = llm.chat(user("Classify ticket 1: printer on fire"))
    recorded = {"cheap": 1e-6, "big": 5e-5}
    assert response.message.content == "hardware-1"
    assert (
        response.additional_kwargs["sls_cost_usd"]
        == recorded[response.additional_kwargs["sls_model"]]
    )
    assert llm.chat(user("Classify ticket 1: printer on fire")).additional_kwargs["sls_cache_hit"]
    llm.router.save()
    again = SmartRouterLLM.from_replay(data, state=tmp_path / "state", **OPTIONS)
    assert again.chat(user("Classify ticket 1: printer on fire")).additional_kwargs["sls_cache_hit"]


def test_scripted_models_are_real_llamaindex_llms():
    from llama_index.core.llms.custom import CustomLLM
    from llama_index.core.llms.function_calling import FunctionCallingLLM

    assert isinstance(ScriptedLLM(), CustomLLM)
    assert isinstance(ScriptedToolLLM(), FunctionCallingLLM)


def test_state_keeps_the_cache_across_restarts(li_small, li_large, tmp_path):
    prices = {"small": (0.1, 0.2), "large": (5.0, 15.0)}
    llms = {"small": li_small, "large": li_large}
    first = SmartRouterLLM.from_llms(llms, prices=prices, state=tmp_path, **OPTIONS)
    answer = first.chat(user("What is a semaphore?"))
    first.router.save(tmp_path)
    again = SmartRouterLLM.from_llms(llms, prices=prices, state=tmp_path, **OPTIONS)
    hit = again.chat(user("What is a semaphore?"))
    assert hit.additional_kwargs["sls_cache_hit"] and hit.message.content == answer.message.content


@pytest.mark.postgres
def test_replicas_on_one_database_share_the_cache(li_small, li_large, new_database):
    prices = {"small": (0.1, 0.2), "large": (5.0, 15.0)}
    llms = {"small": li_small, "large": li_large}
    url = new_database()
    first, second = (
        SmartRouterLLM.from_llms(llms, prices=prices, state=url, **OPTIONS) for _ in range(2)
    )
    try:
        answer = first.chat(user("What is a semaphore?"))
        first.router.save()  # waits for the queued writes
        hit = second.chat(user("What is a semaphore?"))
        assert hit.additional_kwargs["sls_cache_hit"]
        assert hit.message.content == answer.message.content
    finally:
        first.router.close()
        second.router.close()


def test_an_llm_given_as_judge_grades_answers_and_keeps_wrong_ones_out(li_small):
    judge = ScriptedLLM(name="no")  # its replies begin with "no": a judge that rejects
    llm = SmartRouterLLM.from_llms(
        {"small": li_small},
        prices={"small": (1.0, 2.0)},
        judge=(ModelSpec("judge", 1.0, 4.0), judge),
        judge_share=1.0,
        explore_share=1.0,
        **OPTIONS,
    )
    llm.complete("What is a mutex?")
    llm.router.flush()
    assert judge.calls == 1
    assert not llm.complete("What is a mutex?").additional_kwargs["sls_cache_hit"]


def test_asking_again_in_a_thread_is_feedback_against_the_answer(li_llm, li_small, li_large):
    seen = []
    li_llm.router.on_feedback = lambda *event: seen.append(event)
    question = "What is the boiling point of ethanol?"
    first = li_llm.chat(user(question), thread_id="conversation-1")
    before = calls(li_small, li_large)
    again = li_llm.chat(user(question), thread_id="conversation-1")
    first_id = first.additional_kwargs["sls_request_id"]
    assert [(e[0], e[3], e[4]) for e in seen] == [(first_id, "reask", 0.0)]
    assert again.additional_kwargs["sls_cache_hit"] is False  # answered afresh
    assert calls(li_small, li_large) == before + 1
    # the thread is no generation parameter: another thread is served from the cache
    other = li_llm.complete(question, session_id="conversation-2")
    assert other.additional_kwargs["sls_cache_hit"] is True and len(seen) == 1
