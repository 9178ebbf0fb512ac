"""The contrast check: does a near-identical cached question ask for something else?

Embeddings place "turn on dark mode" and "turn off dark mode" at cosine 0.97, above many
true paraphrases, so no similarity threshold can keep them apart. This check compares
the two texts themselves, only for a candidate the similarity rules would serve, and
names what differs:

* ``negation``: a negation on one side only ("can" / "cannot");
* ``antonym``: a pair of opposites, one word on each side (WordNet 3.0's antonyms and
  a list written for this project, both in ``sls_router/data``);
* ``number``: other numbers, years, versions, times or quantities ("10" / "ten" agree);
* ``unit``: other units ("km" / "miles"; "km" / "kilometres" agree);
* ``order``: the same words swapped around a directional word ("miles to km");
* ``entity``: a name, product or language on one side only, with no close counterpart
  on the other;
* ``unaligned``: a content word of one side with no close counterpart on the other,
  by the token vectors of the static model distilled from the bundled MiniLM (the
  embedder's own token vectors) or by WordNet 3.0's synonyms ("delete" / "remove");
  pure additions ("please", "quickly") are not contrasts;
* ``cross_encoder``: a user-given sentence-transformers ``CrossEncoder`` (a local path,
  never a download) judges the pair not equivalent.

The rules are text only and cost tens of microseconds; the token vectors are loaded on
the first pair that needs them. Whether the cache acts on a kind is learned per scope
(see refusals.py): log lines that differ only in their numbers share a template.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
from rapidfuzz.distance import OSA, Levenshtein

from ..embeddings import minilm_vocabulary
from ..errors import ConfigurationError
from .question_tokens import UNITS, Token, stem, tokenize

KINDS = ("negation", "antonym", "number", "unit", "order", "entity", "unaligned", "cross_encoder")

_WORD_VECTORS_KEPT = 50_000
_MAX_CHARS = 2_000
_SMALL_EDIT = 3  # tokens per side
# pairs that differ in more places are rewordings: the word-level checks stay out of them
_MINIMAL_EDITS = 2
_LONG_WORD = 6  # letters: one slip from a word this long rarely makes another word
# words that are numbers in some sentences only, by their stems
_SOFT_NUMBERS = {"one": "1", "first": "1", "second": "2", "half": "0.5"}
_SYMMETRIC = frozenset(["and", "or", "nor", "between", "vs", "versus", "plus", "times", "&"])


@dataclass(frozen=True)
class Contrast:
    """Why two texts ask for different things: the kind and the spans that differ
    (what only the query has, what only the cached question has)."""

    kind: str
    query_span: str
    cached_span: str
    score: float | None = None  # the cross-encoder's, when it decided


class ContrastCheck:
    """Compare a query with a cached question; `compare` returns the first `Contrast`
    found, or None when nothing says they differ.

    Parameters
    ----------
    token_vectors : name of an embedder whose per-word vectors align content words
        (default ``"static"``: the model2vec table distilled from the bundled MiniLM,
        loaded on first use), an `Embedder`, or None to skip the alignment.
    align_min_cosine : a substituted content word needs a counterpart at least this
        close on the other side, else the pair is refused.
    name_min_cosine : the same for a name (capitalised, all caps, with digits).
    cross_encoder : a local path to a sentence-transformers ``CrossEncoder``, or a loaded
        one; run on candidates the text rules let through.
    cross_encoder_min : its minimum score (after its activation) to serve.
    """

    def __init__(
        self,
        *,
        token_vectors: Any = "static",
        align_min_cosine: float = 0.5,
        name_min_cosine: float = 0.8,
        cross_encoder: Any = None,
        cross_encoder_min: float = 0.5,
    ) -> None:
        if not 0.0 <= align_min_cosine <= 1.0:
            raise ConfigurationError(
                f"align_min_cosine={align_min_cosine!r}: pass a cosine in [0, 1]."
            )
        self.align_min_cosine = align_min_cosine
        self.name_min_cosine = name_min_cosine
        self.cross_encoder_min = cross_encoder_min
        self._token_vectors_spec = token_vectors
        self._token_vectors: Any = None
        self._word_vectors: OrderedDict[str, np.ndarray] = OrderedDict()  # an LRU of words
        self._cross_encoder = _load_cross_encoder(cross_encoder)
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        """What a saved cache records to rebuild an equivalent check."""
        spec = self._token_vectors_spec
        return {
            "token_vectors": spec if isinstance(spec, str) or spec is None else spec.name,
            "align_min_cosine": self.align_min_cosine,
            "name_min_cosine": self.name_min_cosine,
            "cross_encoder": self._cross_encoder is not None,
        }

    def compare(self, query: str, cached: str) -> Contrast | None:
        # bounded work: the check compares what a question says first (a long prompt's
        # tail is judged by the similarity rules alone)
        a, b = tokenize(query[:_MAX_CHARS]), tokenize(cached[:_MAX_CHARS])
        if [t.key for t in a] == [t.key for t in b]:
            return None  # the same words in the same order (case, spelling of numbers)
        edits = _edits(a, b)
        if len(edits) > _MINIMAL_EDITS or not all(e.small for e in edits):
            edits = []  # a rewording: only what no rewording changes (numbers, units, order)
        found = _numbers(a, b) or _units(a, b) or _order(a, b)
        if found is None:
            negation, antonym = _negation(a, b, edits), _antonym(edits)
            if negation is not None and antonym is not None:
                return None  # negated and turned to its opposite: "didn't sink" / "floats"
            found = negation or antonym or self._alignment(a, b, edits)
        if found is None and self._cross_encoder is not None:
            found = self._cross_encoded(query, cached)
        return found

    # -- the checks that need vectors ----------------------------------------------
    def _alignment(self, a: list[Token], b: list[Token], edits: list[_Edit]) -> Contrast | None:
        """Each content word substituted in a small edit needs a close counterpart on the
        other side: the same word elsewhere (a moved clause), its spelling with a typo,
        the words it abbreviates ("BP" / "blood pressure"), or a close token vector. A
        name put in or left out is a contrast of its own ("sort a list" / "... in Rust")."""
        keys_a, keys_b = {t.key for t in a}, {t.key for t in b}
        pool_a = [t for e in edits for t in e.a if _aligned_word(t)]
        pool_b = [t for e in edits for t in e.b if _aligned_word(t)]
        only_a, only_b = _respelled(
            [t for t in pool_a if t.key not in keys_b],
            [t for t in pool_b if t.key not in keys_a],
            [t for e in edits for t in e.a],
            [t for e in edits for t in e.b],
        )
        if not only_a or not only_b:
            names_a, names_b = [t for t in only_a if t.entity], [t for t in only_b if t.entity]
            return Contrast("entity", *_spans(names_a, names_b)) if names_a or names_b else None
        vectors = self._vectors([t.text.lower() for t in only_a + only_b])
        if vectors is None:
            return None
        va, vb = vectors[: len(only_a)], vectors[len(only_a) :]
        sims = va @ vb.T
        for i, ta in enumerate(only_a):
            for j, tb in enumerate(only_b):
                if _synonymous(ta, tb):
                    sims[i, j] = 1.0
        # a word an edit only puts in or leaves out is an addition, not a swap
        added = {
            id(t)
            for e in edits
            for side, other in ((e.a, e.b), (e.b, e.a))
            if not any(_aligned_word(u) for u in other)
            for t in side
        }
        need_a, need_b = self._needed(only_a, added), self._needed(only_b, added)
        short_a, short_b = sims.max(axis=1) - need_a, sims.max(axis=0) - need_b
        if min(short_a.min(), short_b.min()) >= 0:
            return None
        if len(only_a) != len(only_b):  # a name and its expansion match as wholes
            whole = _unit(va.sum(axis=0)) @ _unit(vb.sum(axis=0))
            if whole >= max(need_a.max(), need_b.max()):
                return None
        if short_a.min() <= short_b.min():
            i = int(np.argmin(short_a))
            return _unmatched(only_a[i], only_b[int(np.argmax(sims[i]))])
        j = int(np.argmin(short_b))
        return _unmatched(only_a[int(np.argmax(sims[:, j]))], only_b[j])

    def _needed(self, tokens: list[Token], added: set[int]) -> np.ndarray:
        """How close a counterpart must be: names of one kind sit close together
        ("Austria" / "Australia"), so a name needs a near-synonym; a word only added
        needs none."""

        def needed(token: Token) -> float:
            if token.entity:
                return self.name_min_cosine
            return -np.inf if id(token) in added else self.align_min_cosine

        return np.array([needed(t) for t in tokens])

    def _vectors(self, words: list[str]) -> np.ndarray | None:
        """Unit vectors of `words`; each word is embedded once and kept (the same words
        come back request after request)."""
        if self._token_vectors_spec is None:
            return None
        with self._lock:
            if self._token_vectors is None:
                from ..embeddings import get_embedder

                self._token_vectors = get_embedder(self._token_vectors_spec)
            missing = [w for w in dict.fromkeys(words) if w not in self._word_vectors]
        if missing:
            fresh = np.asarray(self._token_vectors.encode(missing), dtype=np.float32)
            fresh /= np.maximum(np.linalg.norm(fresh, axis=1, keepdims=True), 1e-12)
        with self._lock:
            for word, vector in zip(missing, fresh if missing else ()):
                self._word_vectors[word] = vector
            for word in words:
                self._word_vectors.move_to_end(word)
            while len(self._word_vectors) > _WORD_VECTORS_KEPT:
                self._word_vectors.popitem(last=False)
            return np.stack([self._word_vectors[w] for w in words])

    def _cross_encoded(self, query: str, cached: str) -> Contrast | None:
        score = float(np.asarray(self._cross_encoder.predict([(query, cached)])).reshape(-1)[0])
        if score >= self.cross_encoder_min:
            return None
        return Contrast("cross_encoder", query, cached, score=score)


# -- text rules ----------------------------------------------------------------------
def _negation(a: list[Token], b: list[Token], edits: list[_Edit]) -> Contrast | None:
    """A negation on one side only, put in by a small edit (a rewording that moves a
    "not" around keeps the count even)."""
    neg_a = [t for t in a if t.role == "negation"]
    neg_b = [t for t in b if t.role == "negation"]
    if len(neg_a) % 2 == len(neg_b) % 2:
        return None
    if not any(t.role == "negation" for e in edits for t in e.a + e.b):
        return None  # reworded (no edits kept), or the negation only moved
    return Contrast("negation", *_spans(neg_a, neg_b))


def _numbers(a: list[Token], b: list[Token]) -> Contrast | None:
    """Numbers must match as multisets. A word that is only sometimes a number ("which
    one", "first", "half") counts only where the other side has that number unmatched
    ("the 1st element" / "the first element")."""
    hard_a = Counter(t.key for t in a if t.role in ("number", "time"))
    hard_b = Counter(t.key for t in b if t.role in ("number", "time"))
    soft_a = Counter(_SOFT_NUMBERS[t.key] for t in a if t.role == "word" and t.key in _SOFT_NUMBERS)
    soft_b = Counter(_SOFT_NUMBERS[t.key] for t in b if t.role == "word" and t.key in _SOFT_NUMBERS)
    extra_a, extra_b = (hard_a - hard_b) - soft_b, (hard_b - hard_a) - soft_a
    if not extra_a and not extra_b:
        return None
    return Contrast(
        "number",
        *_spans(
            [t for t in a if t.role in ("number", "time") and t.key in extra_a],
            [t for t in b if t.role in ("number", "time") and t.key in extra_b],
        ),
    )


def _units(a: list[Token], b: list[Token]) -> Contrast | None:
    """A unit swapped for another ("km" / "miles"); a unit named on one side only, or
    in a spelling only a number makes a unit ("a pound"), is not a contrast."""
    units_a = Counter(t.key for t in a if t.role == "unit")
    units_b = Counter(t.key for t in b if t.role == "unit")
    # every unit a side names: its units ("500MB" included) and unit words with no number
    mentions_a = units_a + Counter(
        UNITS[t.text.lower()] for t in a if t.role != "unit" and t.text.lower() in UNITS
    )
    mentions_b = units_b + Counter(
        UNITS[t.text.lower()] for t in b if t.role != "unit" and t.text.lower() in UNITS
    )
    extra_a, extra_b = units_a - mentions_b, units_b - mentions_a
    if not extra_a or not extra_b:
        return None
    return Contrast(
        "unit",
        *_spans(
            [t for t in a if t.role == "unit" and t.key in extra_a],
            [t for t in b if t.role == "unit" and t.key in extra_b],
        ),
    )


def _antonym(edits: list[_Edit]) -> Contrast | None:
    """A word swapped for its opposite in a small edit ("turn on" / "turn off")."""
    pairs = _antonyms()
    for edit in edits:
        for ta in edit.a:
            for tb in edit.b:
                for x in _base_forms(ta):
                    if any((x, y) in pairs.get(x, ()) for y in _base_forms(tb)):
                        return Contrast("antonym", ta.text, tb.text)
    return None


def _order(a: list[Token], b: list[Token]) -> Contrast | None:
    """The same words with two parts trading places around a middle ("miles to km" /
    "km to miles", "Did Athens defeat Sparta"), unless the middle is symmetric ("TCP
    and UDP", "a fruit or a vegetable"). A moved clause is not a trade."""
    ka, kb = [t.key for t in a], [t.key for t in b]
    if Counter(ka) != Counter(kb):
        return None
    first = next(i for i, (x, y) in enumerate(zip(ka, kb)) if x != y)
    last = max(i for i, (x, y) in enumerate(zip(ka, kb)) if x != y)
    wa, wb = ka[first : last + 1], kb[first : last + 1]
    n = len(wa)
    for lx in range(1, n):
        for ly in range(1, n - lx + 1):
            if (
                wa[:lx] == wb[n - lx :]
                and wa[n - ly :] == wb[:ly]
                and wa[lx : n - ly] == wb[ly : n - lx]
            ):
                middle = a[first + lx : first + n - ly]
                if not middle or any(t.text.lower() in _SYMMETRIC for t in middle):
                    return None
                window = a[first : last + 1]
                return Contrast("order", _text(window), _text(b[first : last + 1]))
    return None


def _text(tokens: Sequence[Token]) -> str:
    return " ".join(t.text for t in tokens)


@dataclass(frozen=True)
class _Edit:
    """One place where the texts differ: the tokens of each side there."""

    a: list[Token]
    b: list[Token]

    @property
    def small(self) -> bool:
        """A few words swapped, put in or left out: the edits that make a question read
        the same yet ask something else. Larger ones are rewordings, not judged here."""
        return len(self.a) <= _SMALL_EDIT and len(self.b) <= _SMALL_EDIT


def _edits(a: list[Token], b: list[Token]) -> list[_Edit]:
    """Where the texts differ. Two differences joined only by stop words are one ("is a
    platform to host" / "serves as a repository for" is one rewording, not two swaps)."""
    matcher = SequenceMatcher(None, [t.key for t in a], [t.key for t in b], autojunk=False)
    spans: list[list[int]] = []  # [i1, i2, j1, j2] of each difference
    joinable = False
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            joinable = bool(spans) and not any(t.content for t in a[i1:i2])
        elif joinable:
            spans[-1][1], spans[-1][3] = i2, j2
        else:
            spans.append([i1, i2, j1, j2])
    return [_Edit(a[i1:i2], b[j1:j2]) for i1, i2, j1, j2 in spans]


def _unit(vector: np.ndarray) -> np.ndarray:
    return np.asarray(vector / max(float(np.linalg.norm(vector)), 1e-12))


def _base_forms(token: Token) -> tuple[str, ...]:
    """Its stem, and the stem of its positive for a comparative or superlative
    ("cheapest" -> "cheap")."""
    word = token.text.lower()
    for suffix in ("iest", "est", "ier", "er"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)] + ("y" if suffix.startswith("i") else "")
            return token.key, stem(base)
    return (token.key,)


def _aligned_word(token: Token) -> bool:
    """Words the alignment compares: numbers and units have rules of their own."""
    return token.role == "word" and (token.content or token.entity) and token.key != "one"


def _respelled(
    only_a: list[Token], only_b: list[Token], edited_a: list[Token], edited_b: list[Token]
) -> tuple[list[Token], list[Token]]:
    """Both sides less the words that only spell the same thing differently: a typo
    ("recipie"), a shortened word ("intl" / "international"), initials and the words
    they stand for ("ETF" / "exchange-traded fund", "LCM" / "least common multiple";
    the words are looked for among all the other side's edited words, stop words and
    units included, since "learning" in "ML" / "machine learning" also matches "learn"
    elsewhere)."""
    drop: set[int] = set()
    for words, others, edited in ((only_a, only_b, edited_b), (only_b, only_a, edited_a)):
        for word in words:
            lower = word.text.lower()
            if not lower.isalpha():
                continue
            spelled_out = _initials_of(lower, edited, partly=word.text.isupper())
            if spelled_out:
                drop.update([id(word), *(id(t) for t in spelled_out)])
                continue
            for other in others:
                spelled = other.text.lower()
                if _abbreviates(lower, spelled) or _misspells(lower, spelled):
                    drop.update([id(word), id(other)])
    return [t for t in only_a if id(t) not in drop], [t for t in only_b if id(t) not in drop]


def _initials_of(short: str, words: list[Token], *, partly: bool) -> list[Token]:
    """The run of two or more consecutive `words` whose initials spell `short` ("eu":
    "European Union") or, `partly` (for an acronym written in capitals), begin it
    ("USA": "United States"); [] if none."""
    initials = "".join(t.text[0].lower() if t.text[:1].isalpha() else " " for t in words)
    for size in range(min(len(short), len(words)), 1, -1):
        for at in range(len(words) - size + 1):
            run = initials[at : at + size]
            if run == short or (partly and short.startswith(run)):
                return words[at : at + size]
    return []


def _misspells(word: str, other: str) -> bool:
    """A typo ("recieve", "vissa", "photosythesis"): one side is a word the bundled
    model's vocabulary does not hold, one slip from the other side's word. In a short
    word only the slips that rarely make another word count (two letters swapped, a
    letter doubled or undoubled): "broil" / "boil" and "bake" / "cake" are words."""
    words = minilm_vocabulary()
    shorter = min(len(word), len(other))
    if shorter < 4 or (word in words and other in words) or OSA.distance(word, other) != 1:
        return False
    if shorter >= _LONG_WORD:
        return True
    if len(word) == len(other):
        return Levenshtein.distance(word, other) == 2  # a swap, not a changed letter
    longer, short = (word, other) if len(word) > len(other) else (other, word)
    return any(
        longer[:i] + longer[i + 1 :] == short and longer[i] == longer[i - 1]
        for i in range(1, len(longer))
    )


def _abbreviates(short: str, word: str) -> bool:
    """ "js" for "javascript", "intl" for "international": the same first letter, the
    letters in order, and either a word at least four times longer (so "UK" is not
    "Ukraine") or a short form of three letters or more that the bundled model's
    vocabulary does not hold as a word ("chem", "tbsp"; not "pen" for "pencil")."""
    if len(short) < 2 or len(short) >= len(word) or short[0] != word[0]:
        return False
    rest = iter(word[1:])
    if not all(c in rest for c in short[1:]):
        return False
    if len(short) <= 4 and len(word) >= 4 * len(short):
        return True
    return (
        len(short) >= 3
        and len(word) >= len(short) + 2
        and word.isalpha()
        and short not in minilm_vocabulary()
    )


def _unmatched(a: Token, b: Token) -> Contrast:
    return Contrast("entity" if a.entity or b.entity else "unaligned", a.text, b.text)


def _spans(a: Sequence[Token], b: Sequence[Token]) -> tuple[str, str]:
    return _text(a), _text(b)


def _synonymous(a: Token, b: Token) -> bool:
    """Two words WordNet gives as one meaning in their most frequent senses ("delete" /
    "remove", "buy" / "purchase"): a counterpart whatever their token vectors say."""
    return any((x, y) in _synonyms() for x in _base_forms(a) for y in _base_forms(b))


@cache
def _synonyms() -> frozenset[tuple[str, str]]:
    """(stem, stem) pairs, both ways, from synonyms.tsv."""
    return frozenset(pair for x, y in _stemmed_pairs("synonyms.tsv") for pair in ((x, y), (y, x)))


@cache
def _antonyms() -> dict[str, frozenset[tuple[str, str]]]:
    """stem -> the (stem, opposite stem) pairs it belongs to, from both data files."""
    pairs: dict[str, set[tuple[str, str]]] = {}
    for name in ("antonyms.tsv", "contrast_pairs.tsv"):
        for x, y in _stemmed_pairs(name):
            pairs.setdefault(x, set()).add((x, y))
            pairs.setdefault(y, set()).add((y, x))
    return {k: frozenset(v) for k, v in pairs.items()}


def _stemmed_pairs(name: str) -> list[tuple[str, str]]:
    """The word pairs of a data file in sls_router/data (one tab-separated pair a line,
    "#" comments), as stems; a pair whose words share a stem says nothing."""
    text = (resources.files("sls_router") / "data" / name).read_text(encoding="utf-8")
    pairs = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            x, y = (stem(w) for w in line.split("\t"))
            if x != y:
                pairs.append((x, y))
    return pairs


def _load_cross_encoder(spec: Any) -> Any:
    """A CrossEncoder from a local path (never a download), or the object given."""
    if spec is None or hasattr(spec, "predict"):
        return spec
    from pathlib import Path

    path = Path(spec).expanduser()
    if not path.is_dir():
        raise ConfigurationError(
            f"cross_encoder={spec!r} is not a folder; pass the local path of a saved "
            "sentence-transformers CrossEncoder (it is never downloaded)."
        )
    from ..embeddings import _set_offline

    _set_offline()
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(path), device="cpu", local_files_only=True)
