"""The contrast check: a near-identical cached question that asks something else is
refused before it is served; paraphrases are kept; what each scope learns."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from sls_router import ContrastCheck, SemanticCache, scope_key
from sls_router.backends import CallableBackend
from sls_router.cache.contrast import Contrast
from sls_router.errors import ConfigurationError
from sls_router.router import SmartRouter
from sls_router.types import ModelSpec, Request

CONTRASTS = [
    ("negation", "Can I take ibuprofen with food?", "Can I not take ibuprofen with food?"),
    ("negation", "Why is my build failing?", "Why isn't my build failing?"),
    ("antonym", "How do I turn on dark mode?", "How do I turn off dark mode?"),
    ("antonym", "Should I buy Tesla stock?", "Should I sell Tesla stock?"),
    ("antonym", "Python sort list ascending", "Python sort list descending"),
    ("antonym", "How do I cancel one occurrence?", "How do I cancel all occurrences?"),
    ("number", "What year did World War 1 start?", "What year did World War 2 start?"),
    ("number", "Is Python 3.8 still supported?", "Is Python 3.12 still supported?"),
    ("number", "What features came with ES2015?", "What features came with ES2020?"),
    (
        "unit",
        "How many calories are in 100 grams of rice?",
        "How many calories are in 100 ounces of rice?",
    ),
    ("unit", "Boil water at 100 celsius", "Boil water at 100 fahrenheit"),
    ("unit", "Is the default shard size 500MB?", "Is the default shard size 500GB?"),
    (  # the unit asked for is also named elsewhere on the other side
        "unit",
        "A garden is 12 meters long and 8 meters wide: how much fencing in feet?",
        "A garden is 12 meters long and 8 meters wide: how much fencing in meters?",
    ),
    ("number", "Which 18th century painters used oil?", "Which 1800s painters used oil?"),
    ("number", "Songs released in 1970", "Songs released in the 1970s"),
    ("number", "What is 1/2 of 10?", "What is 1/3 of 10?"),
    ("number", "Is a thousand calories a day enough?", "Is two thousand calories a day enough?"),
    # a real word is not taken for a short form of a longer one, nor for a typo
    ("unaligned", "How do I clean my car?", "How do I clean my cellar?"),
    ("unaligned", "Which wine goes well with desert?", "Which wine goes well with dessert?"),
    ("unaligned", "How long do I boil a steak?", "How long do I broil a steak?"),
    # a noun's broader class is not a synonym (an oak is a tree), nor is a rare sense
    ("unaligned", "How do I grow an oak?", "How do I grow a tree?"),
    ("unaligned", "How fast can a cheetah run?", "How fast can a cat run?"),
    ("unaligned", "What does a child eat?", "What does a monkey eat?"),
    ("order", "Convert 10 miles to km", "Convert 10 km to miles"),
    ("order", "Did Athens defeat Sparta?", "Did Sparta defeat Athens?"),
    ("order", "Is Python faster than Java?", "Is Java faster than Python?"),
    ("entity", "What is the capital of Austria?", "What is the capital of Australia?"),
    ("entity", "How do I sort a list in Java?", "How do I sort a list in Rust?"),
    ("entity", "How do I sort a list?", "How do I sort a list in Rust?"),
]

PARAPHRASES = [
    ("How do I turn on dark mode?", "How can I turn on dark mode?"),
    ("Convert ten miles to km", "Convert 10 miles to kilometres"),
    ("Is a 1,000 dollar budget enough?", "Is a 1000 USD budget enough?"),
    ("Set an alarm for 3pm", "Set an alarm for 15:00"),
    ("What is twenty five plus three?", "What is 25 plus 3?"),
    ("Difference between TCP and UDP", "Difference between UDP and TCP"),
    ("In Python, how do I sort a list?", "How do I sort a list in Python?"),
    ("What's the population of the USA?", "What is the population of the United States?"),
    ("How far is it from NYC to Boston?", "How far is it from New York City to Boston?"),
    ("How do I declare a variable in JS?", "How do I declare a variable in JavaScript?"),
    ("whats a good recipie for banana bread", "What is a good recipe for banana bread?"),
    # short forms the model's vocabulary does not hold, and initials over several words
    ("How many tbsp of sugar in cookies?", "How many tablespoons of sugar in cookies?"),
    ("How do I set an env var in bash?", "How do I set an environment variable in bash?"),
    ("What is a good first course on ML?", "What is a good first course on machine learning?"),
    ("When was the EU founded?", "When was the European Union founded?"),
    ("Which 18th century painters used oil?", "Which 1700s painters used oil?"),
    # typos the model's vocabulary does not hold; fractions, and words that are numbers
    ("How do I recieve a refund?", "How do I receive a refund?"),
    ("How do I get a vissa for Peru?", "How do I get a visa for Peru?"),
    ("What is 3/4 of 100?", "What is 0.75 of 100?"),
    ("Who finished first in the marathon?", "Who finished 1st in the marathon?"),
    ("What is 6 times 9?", "What is 9 times 6?"),
    ("What would you do with 1,000,000 dollars?", "What would you do with a million dollars?"),
    ("Why didn't the Spanish Armada succeed?", "Why did the Spanish Armada fail?"),
    ("Why is my code not working?", "Why doesn't my code work?"),
    ("Bake the cake at 180°C", "Bake the cake at 180 degrees C"),
    # synonyms in their most frequent senses, and a verb for the act it is a way of
    ("How do I delete my account permanently?", "How do I remove my account permanently?"),
    ("How do I clean a sofa?", "How do I clean a couch?"),
    # a word only put in beside a swap is an addition, not part of the swap
    ("Yes, this library uses Arrow.", "This library utilizes Arrow."),
    ("Unfortunately the function removes duplicates.", "The function deletes duplicates."),
    ("How do I dispute a speeding ticket?", "How do I contest a speeding ticket?"),
    ("Who assassinated Abraham Lincoln?", "Who killed Abraham Lincoln?"),
    # a unit glued to its number, the same on both sides, in a rewording
    (
        'The `max_shard_size` parameter has a default setting of "500MB".',
        'The default value of the `max_shard_size` parameter is "500MB".',
    ),
]


@pytest.fixture(scope="module")
def check() -> ContrastCheck:
    return ContrastCheck()


@pytest.mark.parametrize(("kind", "cached", "query"), CONTRASTS)
def test_each_kind_of_contrast_is_named(check, kind, cached, query):
    found = check.compare(query, cached)
    assert found is not None and found.kind == kind
    assert found.query_span or found.cached_span  # says what differs


@pytest.mark.parametrize(("cached", "query"), PARAPHRASES)
def test_paraphrases_are_not_contrasts(check, cached, query):
    assert check.compare(query, cached) is None


def test_a_long_rewording_is_left_to_the_similarity_rules(check):
    cached = "Hugging Face Hub is a platform to host Git-based models, datasets, and Spaces."
    query = "Hugging Face Hub serves as a repository for Git-based models, datasets, and Spaces."
    assert check.compare(query, cached) is None
    # but numbers still count in a rewording: a different version is another question
    assert (
        check.compare("Is it in version 2.10 of the library?", "The library has it since 2.11.")
        is not None
    )


def test_the_issues_cold_cache_refuses_every_opposite():
    cache, scope = SemanticCache(), scope_key("t", params={}, system=None, history=[])
    asked = [
        "How do I turn on dark mode?",
        "Convert 10 miles to km",
        "Should I buy Tesla stock?",
        "What year did World War 1 start?",
        "Python sort list ascending",
    ]
    for q in asked:
        cache.insert(q, "answer to " + q, scope)
    opposite = [
        "How do I turn off dark mode?",
        "Convert 10 km to miles",
        "Should I sell Tesla stock?",
        "What year did World War 2 start?",
        "Python sort list descending",
    ]
    refused = [cache.lookup(q, scope) for q in opposite]
    assert not any(r.hit for r in refused)
    assert {r.reason for r in refused} == {"contrast"}
    assert [r.contrast.kind for r in refused] == [
        "antonym",
        "order",
        "antonym",
        "number",
        "antonym",
    ]
    assert cache.stats().refusals == {"antonym": 3, "order": 1, "number": 1}
    # the same questions reworded are still served
    kept = cache.lookup("How can I turn on dark mode?", scope)
    assert kept.hit and kept.answer == "answer to How do I turn on dark mode?"


class _CountingCheck(ContrastCheck):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def compare(self, query: str, cached: str) -> Contrast | None:
        self.calls += 1
        return super().compare(query, cached)


def test_the_check_runs_only_on_a_would_be_hit():
    check = _CountingCheck()
    cache = SemanticCache("hashing", contrast=check)
    assert not cache.lookup("disk quota exceeded for user 12").hit  # empty: a miss
    cache.insert("disk quota exceeded for user 12", "quota")
    assert not cache.lookup("kernel panic on cpu 3 during boot sequence").hit  # far: a miss
    assert check.calls == 0
    assert not cache.lookup("disk quota exceeded for user 13").hit  # would hit: checked, refused
    assert check.calls == 1


def _quota_cache() -> tuple[SemanticCache, str]:
    cache, scope = SemanticCache("hashing"), "logs:a"
    cache.insert("disk quota exceeded for user 12", "<*> quota exceeded for user <*>", scope)
    return cache, scope


def test_a_scope_learns_to_serve_a_kind_its_refusals_got_wrong():
    cache, scope = _quota_cache()
    for user in range(100, 200):
        found = cache.lookup(f"disk quota exceeded for user {user}", scope)
        if found.hit:
            break
        assert found.contrast is not None and found.contrast.kind == "number"
        cache.observe(found, True)  # the refused entry would have been right
    assert found.hit, "the scope never learned that its numbers do not matter"
    learned = user - 100
    # no verdict on fresh answers: they count as wrong at the target rate (2%), and the
    # candidate may add 2% more: 1 / (n + 1) <= 4% after 24 refusals for nothing
    assert learned == 24
    # another scope has learned nothing and still refuses
    cache.insert("disk quota exceeded for user 12", "quota", "logs:b")
    assert cache.lookup("disk quota exceeded for user 99", "logs:b").reason == "contrast"
    # a contrast served through stays evidence: a wrong verdict there teaches the scope again
    assert found.contrast is not None and found.contrast.kind == "number"


def test_right_refusals_keep_the_scope_refusing_and_leave_the_threshold_alone():
    cache, scope = _quota_cache()
    before = cache.threshold.similarity_
    for user in range(100, 300):
        found = cache.lookup(f"disk quota exceeded for user {user}", scope)
        assert found.reason == "contrast"
        cache.observe(found, user % 10 != 0)  # one refused candidate in ten was wrong
    assert cache.threshold.similarity_ <= before  # refused candidates never raise it
    assert cache.stats().refusals["number"] == 200


def test_a_scope_whose_fresh_answers_are_often_wrong_stops_refusing_sooner():
    cache, scope = _quota_cache()
    for user in range(100, 200):
        found = cache.lookup(f"disk quota exceeded for user {user}", scope)
        if found.hit:
            break
        cache.judge_fresh(found, user % 4 != 0)  # the fresh answers: one in four wrong
        cache.judge_refusal(found, True)
    assert found.hit and user - 100 < 6


def test_refusal_trust_survives_save_and_load(tmp_path):
    cache, scope = _quota_cache()
    for user in range(100, 160):
        found = cache.lookup(f"disk quota exceeded for user {user}", scope)
        if not found.hit:
            cache.observe(found, True)
    assert cache.lookup("disk quota exceeded for user 7", scope).hit
    cache.save(tmp_path)
    loaded = SemanticCache.load(tmp_path)
    assert loaded.lookup("disk quota exceeded for user 8", scope).hit
    assert loaded.stats().refusals == cache.stats().refusals


def test_the_router_learns_from_fresh_answers_that_match_the_refused_one():
    """Log lines that differ only in numbers share a template: each refused candidate
    whose template equals the fresh one is a refusal for nothing, even with only a
    verifier's weak passes."""
    template = "<*> quota exceeded for user <*>"
    model = CallableBackend(lambda request: template)
    router = SmartRouter(
        [(ModelSpec("m", 0.1, 0.1), model)],
        embedder="hashing",
        verifier=lambda request, answer: 1.0,
        background_updates=False,
        max_wrong_rate=0.2,  # three refusals for nothing are enough at this target
    )
    served = [
        router.complete(Request(prompt=f"disk quota exceeded for user {user}")) for user in range(9)
    ]
    assert [r.cache_hit for r in served[:5]] == [False] * 5  # cold: refused for the number
    assert served[-1].cache_hit  # learned: this scope's numbers do not change the answer
    assert router.cache.stats().refusals["number"] == 3


def test_a_user_given_cross_encoder_decides_what_the_text_rules_let_through(tmp_path):
    from sentence_transformers import CrossEncoder

    from sls_router.embeddings import _minilm_path, _set_offline

    _set_offline()
    # a real CrossEncoder on the bundled MiniLM weights (its head is untrained: the test
    # only needs its scores to be used), saved and loaded back from a local path
    CrossEncoder(str(_minilm_path()), num_labels=1, device="cpu").save(str(tmp_path / "ce"))
    strict = ContrastCheck(cross_encoder=tmp_path / "ce", cross_encoder_min=1.01)
    found = strict.compare("How can I turn on dark mode?", "How do I turn on dark mode?")
    assert found is not None and found.kind == "cross_encoder"
    assert found.score is not None and 0.0 <= found.score <= 1.0
    lenient = ContrastCheck(cross_encoder=strict._cross_encoder, cross_encoder_min=-1.0)
    assert lenient.compare("How can I turn on dark mode?", "How do I turn on dark mode?") is None
    # the text rules still decide first: an opposite never reaches the cross-encoder
    assert (
        lenient.compare("How do I turn off dark mode?", "How do I turn on dark mode?").kind
        == "antonym"
    )


def test_a_cross_encoder_that_is_not_a_folder_is_refused_clearly(tmp_path):
    with pytest.raises(ConfigurationError, match="never downloaded"):
        ContrastCheck(cross_encoder="cross-encoder/ms-marco-MiniLM-L-6-v2")


def test_no_download_is_attempted(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    check = ContrastCheck()
    assert check.compare("Can dogs eat cheese?", "Can dogs eat chocolate?").kind == "unaligned"
    assert (
        check.compare("How do I sort a list in Java?", "How do I sort a list in Rust?").kind
        == "entity"
    )


def test_word_vectors_are_unit_length_and_kept(check):
    vectors = check._vectors(["whale", "shark", "whale"])
    assert vectors is not None and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2])


def test_bad_settings_are_refused_with_what_to_do():
    with pytest.raises(ConfigurationError, match="cosine in"):
        ContrastCheck(align_min_cosine=1.5)


def test_a_huge_prompt_is_checked_in_bounded_time(check):
    import time

    long = "word " * 200_000 + "with 12 numbers"
    start = time.thread_time()
    check.compare(long + " and 3", long + " and 4")
    assert time.thread_time() - start < 2.0
