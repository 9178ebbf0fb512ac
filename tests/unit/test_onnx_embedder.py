"""The ONNX Runtime embedders: offline deterministic export, torch's vectors, refusal of a
corrupt export, the registry names, and a session shared by threads."""

from __future__ import annotations

import shutil
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from sls_router.backends import CallableBackend
from sls_router.embeddings import EMBEDDERS, Embedder, MiniLMEmbedder, _minilm_path
from sls_router.errors import ConfigurationError, DependencyError
from sls_router.onnx_embedder import (
    MAX_DEFAULT_THREADS,
    OnnxEmbedder,
    _load_session,
    _max_seq_length,
    _tokenizer,
    _verified,
    _write_verified,
    export_graph,
    export_path,
)
from sls_router.router import SmartRouter
from sls_router.testing import no_network
from sls_router.types import ModelSpec

pytest.importorskip("onnxruntime")

# Varied on purpose: short, long (truncated at 256 tokens), blank-ish, unicode, code, logs.
TEXTS = [
    "How do I reset my password?",
    "I forgot my password, how can I change it?",
    "What is the capital of France?",
    "turn on the lights",
    "turn off the lights",
    "x",
    " ",
    "",
    "\n\t  padded text with surrounding whitespace  \n",
    "Ünïcödé ✓ 日本語のテキスト",
    "Привет, как дела?",
    "🙂🙃 emoji only 🚀",
    "def add(a, b):\n    return a + b",
    "081109 203615 148 INFO dfs.DataNode$PacketResponder: Received block blk_-1608999687919862906",
    "SELECT * FROM users WHERE id = 42;",
    "word " * 2000,
    "a" * 5000,
    "the quick brown fox jumps over the lazy dog " * 60,
    "Summarise the incident report for the billing service outage on Monday.",
    "Translate the release notes of version 2.3 into German.",
    "classify the support ticket about a refund",
    "Is 17 a prime number?",
    "miles to km",
    "km to miles",
    "What happened in 1969?",
    "What happened in 1996?",
    "Explain gradient descent like I am five.",
    "error 500 on the login page since the update",
    "12345 67890",
    "!!!???...",
    "CamelCaseIdentifiersAndSnake_case_names",
    "a mixed-language sentence: le chat est sur la table, the cat is on the table",
    "line one\nline two\nline three",
    "https://example.com/path?query=1&other=2",
    "[CLS] [SEP] [PAD] [UNK] [MASK]",
    "The Court overrules the decision in Smith v. Jones, 123 U.S. 456 (1887).",
]


# --------------------------------------------------------------------------- fast


def test_registry_has_the_onnx_names() -> None:
    assert {"onnx", "onnx-int8"} <= set(EMBEDDERS)


def test_files_without_a_matching_manifest_are_never_trusted(tmp_path: Path) -> None:
    path = tmp_path / "model-fp32.onnx"
    _write_verified(path, lambda tmp: tmp.write_bytes(b"graph bytes " * 100))
    assert _verified(path)
    assert not list(tmp_path.glob("*.tmp"))  # no temporary file left behind
    path.write_bytes(path.read_bytes()[:50])  # truncated
    assert not _verified(path)
    path.write_bytes(b"graph bytes " * 100)
    assert _verified(path)
    Path(str(path) + ".json").unlink()  # crash before the manifest was written
    assert not _verified(path)


def test_a_failed_write_leaves_nothing_trusted(tmp_path: Path) -> None:
    path = tmp_path / "model-fp32.onnx"

    def fail(tmp: Path) -> None:
        tmp.write_bytes(b"half a graph")
        raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError):
        _write_verified(path, fail)
    assert not _verified(path)
    assert list(tmp_path.iterdir()) == []


def test_missing_onnxruntime_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(DependencyError, match=r"sls-router\[onnx\]"):
        _load_session(tmp_path / "model-fp32.onnx", 1)


def test_the_export_folder_is_keyed_by_source_and_settings(tmp_path: Path) -> None:
    fp32, int8 = export_path("fp32", tmp_path), export_path("int8", tmp_path)
    assert fp32.parent == int8.parent and fp32.parent.parent == tmp_path
    assert fp32.parent.name.startswith("onnx-minilm-") and fp32 != int8


# --------------------------------------------------------------------------- real model


@pytest.mark.slow
def test_export_is_deterministic_and_offline(
    onnx_cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_network(monkeypatch)
    again = tmp_path / "again.onnx"
    export_graph(_minilm_path(), again, _max_seq_length(_minilm_path()))
    assert again.read_bytes() == export_path("fp32", onnx_cache_dir).read_bytes()


@pytest.mark.slow
def test_fp32_vectors_equal_torch_vectors(onnx_cache_dir: Path) -> None:
    onnx = OnnxEmbedder(cache_dir=onnx_cache_dir).encode(TEXTS)
    torch = MiniLMEmbedder(backend="torch").encode(TEXTS)
    assert onnx.dtype == np.float32 and onnx.shape == torch.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(onnx * torch, axis=1)
    assert cosines.min() >= 1 - 1e-4, dict(zip(TEXTS, cosines.round(6)))


def test_tokens_are_those_sentence_transformers_feeds_the_model() -> None:
    """The shared Rust tokenizer truncates and pads as the torch path does, so the same
    texts reach the graph; long texts are cut at the model's 256 tokens."""
    source = _minilm_path()
    ours = _tokenizer(source, _max_seq_length(source)).encode_batch(TEXTS)
    reference = MiniLMEmbedder(backend="torch")._model.tokenize(TEXTS)
    assert [e.ids for e in ours] == reference["input_ids"].tolist()
    assert [e.attention_mask for e in ours] == reference["attention_mask"].tolist()
    assert max(len(e.ids) for e in ours) == 256


def test_threads_default_to_the_cores_up_to_a_cap(
    onnx_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for cores, expected in ((1, 1), (2, 2), (64, MAX_DEFAULT_THREADS)):
        monkeypatch.setattr("os.cpu_count", lambda cores=cores: cores)
        session = OnnxEmbedder(cache_dir=onnx_cache_dir)._session
        assert session.get_session_options().intra_op_num_threads == expected
    with pytest.raises(ConfigurationError, match="threads"):
        OnnxEmbedder(cache_dir=onnx_cache_dir, threads=0)


@pytest.mark.slow
def test_a_corrupt_export_is_refused_and_rebuilt(onnx_cache_dir: Path, tmp_path: Path) -> None:
    good = export_path("fp32", onnx_cache_dir)
    copy = export_path("fp32", tmp_path)
    shutil.copytree(good.parent, copy.parent)
    copy.write_bytes(copy.read_bytes()[: copy.stat().st_size // 2])  # truncated
    rebuilt = OnnxEmbedder(cache_dir=tmp_path)
    assert copy.read_bytes() == good.read_bytes()
    expected = OnnxEmbedder(cache_dir=onnx_cache_dir).encode(TEXTS[:4])
    np.testing.assert_array_equal(rebuilt.encode(TEXTS[:4]), expected)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["onnx", "onnx-int8"])
def test_registry_names_work_from_the_router(
    name: str, onnx_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLS_ROUTER_CACHE_DIR", str(onnx_cache_dir))
    pool = [(ModelSpec("m"), CallableBackend(lambda r: "answer"))]
    router = SmartRouter(pool, embedder=name, background_updates=False)
    try:
        assert router.embedder.name == name
        a, b, c = router.embedder.encode([TEXTS[0], TEXTS[1], TEXTS[2]])
        assert a @ b > a @ c  # the paraphrase is closer than the other question
    finally:
        router.close()


@pytest.mark.slow
def test_minilm_runs_on_onnx_under_its_own_name(
    onnx_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLS_ROUTER_CACHE_DIR", str(onnx_cache_dir))
    minilm = MiniLMEmbedder()
    assert minilm.name == "minilm" and minilm.backend == "onnx"  # saved caches stay valid
    expected = OnnxEmbedder(cache_dir=onnx_cache_dir).encode(TEXTS[:3])
    np.testing.assert_array_equal(minilm.encode(TEXTS[:3]), expected)


@pytest.mark.slow
def test_minilm_falls_back_to_torch_without_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    minilm = MiniLMEmbedder()
    assert minilm.name == "minilm" and minilm.backend == "torch"
    assert minilm.encode(TEXTS[:2]).shape == (2, 384)
    with pytest.raises(DependencyError, match=r"sls-router\[onnx\]"):
        MiniLMEmbedder(backend="onnx")


@pytest.mark.slow
def test_minilm_falls_back_to_torch_where_the_cache_dir_is_unusable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SLS_ROUTER_CACHE_DIR", str(blocker))
    assert MiniLMEmbedder(backend="auto").backend == "torch"


def test_minilm_refuses_an_unknown_backend() -> None:
    with pytest.raises(ConfigurationError, match="backend"):
        MiniLMEmbedder(backend="cuda")


@pytest.mark.slow
def test_a_big_batch_equals_one_text_at_a_time(onnx_cache_dir: Path) -> None:
    embedder = OnnxEmbedder(cache_dir=onnx_cache_dir, batch_size=4)  # 36 texts: 9 batches
    one_by_one = np.concatenate([embedder.encode([text]) for text in TEXTS])
    np.testing.assert_allclose(embedder.encode(TEXTS), one_by_one, atol=1e-5)


def _builder(kind: str, cache_dir: Path) -> Callable[[bool], Embedder]:
    if kind == "onnx":
        return lambda batching: OnnxEmbedder(cache_dir=cache_dir, batching=batching)
    return lambda batching: MiniLMEmbedder(backend="torch", batching=batching)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["onnx", "torch"])
def test_8_threads_sharing_an_embedder_get_the_vectors_of_unbatched_calls(
    kind: str, onnx_cache_dir: Path
) -> None:
    build = _builder(kind, onnx_cache_dir)
    embedder, alone = build(True), build(False)
    work = [[text] for text in TEXTS] * 4 + [TEXTS[i : i + 5] for i in range(0, len(TEXTS), 5)]
    expected = [alone.encode(batch) for batch in work]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(embedder.encode, work))
    for want, got in zip(expected, concurrent):
        np.testing.assert_allclose(got, want, atol=1e-5)  # a batch pads: last digits move


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["onnx", "torch"])
def test_calls_made_during_a_batch_are_coalesced_with_their_own_vectors(
    kind: str, onnx_cache_dir: Path
) -> None:
    build = _builder(kind, onnx_cache_dir)
    embedder, alone = build(True), build(False)
    batcher = embedder._batcher  # type: ignore[attr-defined]
    assert batcher is not None
    model, batches = batcher._encode, []
    entered, gate = threading.Event(), threading.Event()

    def held(texts: list[str]) -> np.ndarray:
        batches.append(len(texts))
        if texts == [TEXTS[0]]:
            entered.set()
            assert gate.wait(60)
        return model(texts)

    batcher._encode = held
    with ThreadPoolExecutor(max_workers=len(TEXTS)) as pool:
        first = pool.submit(embedder.encode, [TEXTS[0]])
        assert entered.wait(60)
        rest = [pool.submit(embedder.encode, [text]) for text in TEXTS[1:]]
        for _ in range(60_000):  # until every call has queued (a handshake, not a timing)
            if len(batcher._queue) == len(TEXTS) - 1:
                break
            gate.wait(0.001)
        gate.set()
        got = [first.result()] + [f.result() for f in rest]
    assert batches == [1, len(TEXTS) - 1]  # the lone call alone, then one batch for the rest
    for text, vector in zip(TEXTS, got):
        np.testing.assert_allclose(vector, alone.encode([text]), atol=1e-5)


@pytest.mark.slow
def test_int8_vectors_do_not_depend_on_concurrent_calls(onnx_cache_dir: Path) -> None:
    """int8 quantises activations per batch, so it does not coalesce calls by default."""
    embedder = OnnxEmbedder("int8", cache_dir=onnx_cache_dir)
    alone = [embedder.encode([text]) for text in TEXTS]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(lambda text: embedder.encode([text]), TEXTS * 3))
    for i, got in enumerate(concurrent):
        np.testing.assert_array_equal(got, alone[i % len(TEXTS)])
