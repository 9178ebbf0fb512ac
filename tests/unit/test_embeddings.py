"""Behaviour of the embedders: geometry, input checks, registry, and the static-model
cache folder."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from sls_router.embeddings import (
    EMBEDDERS,
    MAX_TEXT_CHARS,
    Embedder,
    HashingEmbedder,
    MiniLMEmbedder,
    StaticEmbedder,
    _default_cache_dir,
    _install_atomically,
    get_embedder,
)
from sls_router.errors import ConfigurationError, InvalidInputError

RESET = "How do I reset my password?"
RESET_PARAPHRASE = "I forgot my password, how can I change it?"
FRANCE = "What is the capital of France?"
ONE_MB = "lorem ipsum dolor sit amet " * (1_000_000 // 27 + 1)


def _assert_unit_float32(vectors: np.ndarray, n: int, dim: int) -> None:
    assert vectors.dtype == np.float32
    assert vectors.shape == (n, dim)
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def _cos(embedder: Embedder, a: str, b: str) -> float:
    va, vb = embedder.encode([a, b])
    return float(va @ vb)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def hashing() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="session")
def static_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private cache dir holding a freshly distilled static model.

    Distillation takes about 20 s on 2 cores, so each test session builds its own
    copy instead of depending on (or writing to) the user's real cache.
    """
    root = tmp_path_factory.mktemp("sls-cache")
    with pytest.MonkeyPatch.context() as mp:
        import huggingface_hub

        def no_hub(*args: object, **kwargs: object) -> None:
            raise AssertionError("the static embedder must not contact the Hugging Face hub")

        mp.setattr(huggingface_hub, "snapshot_download", no_hub)
        StaticEmbedder(cache_dir=root)
    return root


@pytest.fixture(scope="session")
def static(static_cache_dir: Path) -> StaticEmbedder:
    return StaticEmbedder(cache_dir=static_cache_dir)


# --------------------------------------------------------------------------- hashing (no model)


def test_hashing_gives_unit_float32_rows_of_the_requested_dim() -> None:
    _assert_unit_float32(HashingEmbedder().encode(["a log line", "another one"]), 2, 512)
    _assert_unit_float32(HashingEmbedder(dim=64).encode(("short",)), 1, 64)


def test_hashing_is_deterministic_across_instances(hashing: HashingEmbedder) -> None:
    texts = ["GET /api/v1/users/42 200 13ms", "disk full on /dev/sda1"]
    np.testing.assert_array_equal(hashing.encode(texts), HashingEmbedder().encode(texts))


def test_hashing_puts_near_identical_log_lines_closer_than_different_ones(
    hashing: HashingEmbedder,
) -> None:
    base = "ERROR 2024-05-01T10:00:01Z db-01 connection refused on port 5432 (retry 3/5)"
    near = "ERROR 2024-05-01T10:00:07Z db-02 connection refused on port 5432 (retry 4/5)"
    other = "INFO user alice logged in from 10.0.0.7 using browser Firefox"
    assert _cos(hashing, base, near) > 0.8
    assert _cos(hashing, base, near) > _cos(hashing, base, other) + 0.3


def test_empty_string_is_embedded_without_nan(hashing: HashingEmbedder) -> None:
    vectors = hashing.encode(["", "text"])
    assert vectors.shape == (2, 512)
    assert np.isfinite(vectors).all()
    assert np.linalg.norm(vectors[1]) == pytest.approx(1.0, abs=1e-5)


def test_empty_batch_gives_an_empty_matrix(hashing: HashingEmbedder) -> None:
    out = hashing.encode([])
    assert out.shape == (0, 512) and out.dtype == np.float32


def test_one_megabyte_text_is_cheap_and_only_its_start_matters(hashing: HashingEmbedder) -> None:
    start = time.perf_counter()
    vectors = hashing.encode([ONE_MB])
    assert time.perf_counter() - start < 0.5
    _assert_unit_float32(vectors, 1, 512)
    tail_changed = ONE_MB[:MAX_TEXT_CHARS] + "completely different ending " * 100
    np.testing.assert_array_equal(vectors, hashing.encode([tail_changed]))


# --------------------------------------------------------------------------- input validation


@pytest.mark.parametrize(
    ("texts", "hint"),
    [
        ("a bare string", "encode([text])"),
        (["fine", 3], "texts[1] is int"),
        (None, "list or tuple of str"),
        ((t for t in ["a generator"]), "list(...)"),
        (b"bytes", "list or tuple of str"),
        ([b"bytes item"], "texts[0] is bytes"),
    ],
)
def test_bad_input_raises_invalid_input_with_a_hint(
    hashing: HashingEmbedder, texts: object, hint: str
) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(hint)):
        hashing.encode(texts)  # type: ignore[arg-type]


def test_invalid_input_is_also_a_value_error(hashing: HashingEmbedder) -> None:
    with pytest.raises(ValueError):
        hashing.encode("oops")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- registry


def test_get_embedder_builds_registered_names() -> None:
    assert set(EMBEDDERS) == {"minilm", "static", "hashing", "onnx", "onnx-int8"}
    embedder = get_embedder("hashing")
    assert isinstance(embedder, HashingEmbedder) and embedder.name == "hashing"


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        get_embedder("bert-large")
    message = str(info.value)
    for name in ("minilm", "static", "hashing"):
        assert name in message


def test_a_ready_embedder_is_returned_as_is() -> None:
    class Custom:
        name = "custom"
        dim = 3

        def encode(self, texts):  # noqa: ANN001, ANN202
            return np.ones((len(texts), 3), dtype=np.float32) / np.sqrt(3)

    custom = Custom()
    assert get_embedder(custom) is custom


@pytest.mark.parametrize("bad", [HashingEmbedder, 42, object()])
def test_non_embedders_are_rejected(bad: object) -> None:
    with pytest.raises(ConfigurationError):
        get_embedder(bad)  # type: ignore[arg-type]


# ----------------------------------------------------------------- static-model folder handling


def test_default_cache_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SLS_ROUTER_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("SLS_ROUTER_CACHE_DIR")
    assert _default_cache_dir() == tmp_path / "xdg" / "sls-router"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _default_cache_dir() == tmp_path / "home" / ".cache" / "sls-router"


def test_a_crash_while_building_leaves_no_folder_behind(tmp_path: Path) -> None:
    target = tmp_path / "model"

    def crash(folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        _install_atomically(target, crash)
    assert list(tmp_path.iterdir()) == []


def test_losing_the_build_race_keeps_the_winner(tmp_path: Path) -> None:
    target = tmp_path / "model"

    def other_process_wins(folder: Path) -> None:
        (folder / "mine.txt").write_text("loser")
        target.mkdir()
        (target / "theirs.txt").write_text("winner")

    _install_atomically(target, other_process_wins)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert [p.name for p in target.iterdir()] == ["theirs.txt"]


# --------------------------------------------------------------------------- MiniLM (real model)


@pytest.mark.slow
def test_minilm_gives_unit_float32_rows(minilm: MiniLMEmbedder) -> None:
    assert minilm.name == "minilm" and minilm.dim == 384
    _assert_unit_float32(minilm.encode([RESET, RESET_PARAPHRASE, FRANCE, ""]), 4, 384)


@pytest.mark.slow
def test_minilm_puts_paraphrases_closer_than_unrelated_questions(minilm: MiniLMEmbedder) -> None:
    paraphrase, unrelated = _cos(minilm, RESET, RESET_PARAPHRASE), _cos(minilm, RESET, FRANCE)
    assert paraphrase > 0.7 > 0.3 > unrelated


@pytest.mark.slow
def test_minilm_is_the_default_and_shares_its_loaded_model(minilm: MiniLMEmbedder) -> None:
    start = time.perf_counter()
    default = get_embedder(None)
    assert time.perf_counter() - start < 1.0  # no second load
    assert isinstance(default, MiniLMEmbedder)
    np.testing.assert_allclose(default.encode([RESET]), minilm.encode([RESET]), atol=1e-6)


@pytest.mark.slow
def test_minilm_embeds_one_megabyte_quickly(minilm: MiniLMEmbedder) -> None:
    start = time.perf_counter()
    vectors = minilm.encode([ONE_MB])
    assert time.perf_counter() - start < 2.0
    _assert_unit_float32(vectors, 1, 384)


@pytest.mark.slow
def test_minilm_rejects_a_bare_string(minilm: MiniLMEmbedder) -> None:
    with pytest.raises(InvalidInputError):
        minilm.encode(RESET)  # type: ignore[arg-type]


# ------------------------------------------------ static model (distilled once per session)


@pytest.mark.slow
def test_static_gives_unit_float32_rows(static: StaticEmbedder) -> None:
    assert static.name == "static" and static.dim == 256
    _assert_unit_float32(static.encode([RESET, RESET_PARAPHRASE, FRANCE]), 3, 256)
    assert np.isfinite(static.encode([""])).all()


@pytest.mark.slow
def test_static_puts_paraphrases_closer_than_unrelated_questions(static: StaticEmbedder) -> None:
    paraphrase, unrelated = _cos(static, RESET, RESET_PARAPHRASE), _cos(static, RESET, FRANCE)
    assert paraphrase > 0.6 > 0.3 > unrelated


@pytest.mark.slow
def test_static_single_query_is_sub_millisecond(static: StaticEmbedder) -> None:
    timings = []
    for _ in range(200):
        start = time.perf_counter()
        static.encode([RESET])
        timings.append(time.perf_counter() - start)
    assert float(np.median(timings)) < 1e-3


@pytest.mark.slow
def test_static_embeds_one_megabyte_quickly(static: StaticEmbedder) -> None:
    start = time.perf_counter()
    vectors = static.encode([ONE_MB])
    assert time.perf_counter() - start < 0.5
    _assert_unit_float32(vectors, 1, 256)


@pytest.mark.slow
def test_static_build_leaves_one_complete_folder(
    static: StaticEmbedder, static_cache_dir: Path
) -> None:
    assert [p.name for p in static_cache_dir.iterdir()] == [static.model_dir.name]
    assert {"model.safetensors", "tokenizer.json", "config.json"} <= {
        p.name for p in static.model_dir.iterdir()
    }


@pytest.mark.slow
def test_static_uses_the_cache_dir_from_the_environment(
    static: StaticEmbedder, static_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLS_ROUTER_CACHE_DIR", str(static_cache_dir))
    assert StaticEmbedder().model_dir == static.model_dir


@pytest.mark.slow
def test_static_loads_an_existing_folder_in_a_fresh_process_without_network(
    static: StaticEmbedder, static_cache_dir: Path
) -> None:
    script = textwrap.dedent(
        """
        import socket, sys, numpy as np

        def refuse(*args, **kwargs):
            raise OSError("network is off in this test")

        socket.socket.connect = refuse
        socket.create_connection = refuse
        from sls_router.embeddings import StaticEmbedder
        vector = StaticEmbedder(cache_dir=sys.argv[1]).encode([sys.argv[2]])
        np.save(sys.stdout.buffer, vector)
        """
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")]
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(static_cache_dir), RESET],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    np.testing.assert_allclose(np.load(io.BytesIO(done.stdout)), static.encode([RESET]), atol=1e-6)
