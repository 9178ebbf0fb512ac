"""A question as comparable words: what the contrast check (contrast.py) compares.

Each token keeps how it was written and a key two questions compare: lower case and
stemmed for words; numbers canonical whatever their spelling ("ten", "10", "1,000",
"2 million", "19th", 3pm = 15:00, the digits inside "ES2015"); units named once ("km",
"kilometres"); negations marked ("n't", "cannot", "non-"). Tokenising is the one job of
this module, with its word lists.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache

from ..errors import DependencyError

_NEGATIONS = frozenset(
    [
        "not",
        "no",
        "never",
        "none",
        "nothing",
        "nobody",
        "nowhere",
        "neither",
        "nor",
        "cannot",
        "non",
    ]
)
# what may stand between two swapped words without giving the sentence a direction

_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ]
    )
} | {
    w: 10 * i
    for i, w in enumerate(
        ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], 2
    )
}
# ordinals count as their number ("19th" / "nineteenth"); "first" and "second" stay words
_ORDINAL_WORDS = (
    {
        w: i
        for i, w in enumerate(
            [
                "third",
                "fourth",
                "fifth",
                "sixth",
                "seventh",
                "eighth",
                "ninth",
                "tenth",
                "eleventh",
                "twelfth",
                "thirteenth",
                "fourteenth",
                "fifteenth",
                "sixteenth",
                "seventeenth",
                "eighteenth",
                "nineteenth",
            ],
            3,
        )
    }
    | {
        w: 10 * i
        for i, w in enumerate(
            [
                "twentieth",
                "thirtieth",
                "fortieth",
                "fiftieth",
                "sixtieth",
                "seventieth",
                "eightieth",
                "ninetieth",
            ],
            2,
        )
    }
    | {"dozen": 12}
)
_ORDINAL_SUFFIXES = frozenset(["st", "nd", "rd", "th"])
_CENTURY = frozenset(["century", "centuries"])
_MULTIPLIERS = {"hundred": 100, "thousand": 1_000, "million": 10**6, "billion": 10**9}
_SUFFIX_MULTIPLIERS = {"k": 1_000, "m": 10**6, "b": 10**9, "bn": 10**9}

# unit spellings -> one canonical name per unit; a unit differs only if the names differ
UNITS: dict[str, str] = {}
for _unit_name, _spellings in {
    "mm": "mm millimeter millimeters millimetre millimetres",
    "cm": "cm centimeter centimeters centimetre centimetres",
    "m": "meter meters metre metres",
    "km": "km kms kilometer kilometers kilometre kilometres",
    "inch": "inch inches in",
    "foot": "ft foot feet",
    "yard": "yd yard yards",
    "mile": "mi mile miles",
    "mg": "mg milligram milligrams",
    "g": "g gram grams gramme grammes",
    "kg": "kg kgs kilo kilos kilogram kilograms kilogramme",
    "lb": "lb lbs pound pounds",
    "oz": "oz ounce ounces",
    "ton": "ton tons tonne tonnes",
    "celsius": "c celsius centigrade",
    "fahrenheit": "f fahrenheit",
    "kelvin": "kelvin",
    "ml": "ml milliliter milliliters millilitre millilitres",
    "l": "l liter liters litre litres",
    "gallon": "gal gallon gallons",
    "cup": "cup cups",
    "tbsp": "tbsp tablespoon tablespoons",
    "tsp": "tsp teaspoon teaspoons",
    "ms": "ms millisecond milliseconds",
    "second": "s sec secs second seconds",
    "minute": "min mins minute minutes",
    "hour": "h hr hrs hour hours",
    "day": "day days",
    "week": "week weeks",
    "month": "month months",
    "year": "yr yrs year years",
    "bit": "bit bits",
    "byte": "byte bytes",
    "kb": "kb kilobyte kilobytes",
    "mb": "mb megabyte megabytes",
    "gb": "gb gigabyte gigabytes",
    "tb": "tb terabyte terabytes",
    "usd": "usd dollar dollars $",
    "eur": "eur euro euros €",
    "gbp": "gbp £",
    "jpy": "jpy yen",
    "inr": "inr rupee rupees",
    "mph": "mph",
    "kmh": "kph kmh",
    "calorie": "cal calorie calories kcal",
    "joule": "j joule joules",
    "watt": "w watt watts",
    "kw": "kw kilowatt kilowatts",
    "percent": "% percent percentage",
}.items():
    for _spelling in _spellings.split():
        UNITS[_spelling] = _unit_name
# one-letter or ambiguous spellings count as units only right after a number ("5 m")
_AFTER_NUMBER_ONLY = frozenset(
    [s for s in UNITS if len(s) == 1 and s.isalpha()]
    + ["in", "mi", "min", "mins", "sec", "secs", "ms", "cal", "gal", "pound", "pounds"]
    + ["second", "seconds"]
)
# written in capitals these are units; other capitals are names ("ML" is machine learning)
_CAPITALUNITS = frozenset(["KB", "MB", "GB", "TB", "USD", "EUR", "GBP", "JPY", "INR", "KW", "MPH"])
_DEGREES = frozenset(["degree", "degrees", "deg"])

_CONTRACTIONS = (
    (re.compile(r"\bcan[’']t\b", re.I), "can not"),
    (re.compile(r"\bwon[’']t\b", re.I), "will not"),
    (re.compile(r"n[’']t\b", re.I), " not"),
)
_TIME = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*([ap])\.?m\b\.?|\b(\d{1,2}):(\d{2})\b", re.I)
_TOKEN = re.compile(r"[$€£%]|[^\W_]+(?:[.,:][^\W_]+)*(?:\+\+|#)?")
_NUMBER = re.compile(r"\d+(?:,\d{3})+|\d+(?:\.\d+)*")
_DIGITS = re.compile(r"\d+")
_BARE_DECIMAL = re.compile(r"(?<![\w.])\.(\d)")
_FRACTION = re.compile(r"(?<![\w./])(\d{1,3})/([1-9]\d{0,2})(?![\w/]|\.\d)")
_NUMBER_WITH_SUFFIX = re.compile(r"(\d+(?:\.\d+)?)([a-z%]+)")


@dataclass(frozen=True)
class Token:
    text: str  # as written
    key: str  # what two sides compare: lower case, stemmed; numbers and units canonical
    role: str  # "word", "number", "unit", "time", "negation"
    entity: bool  # written as a name (capitalised mid-sentence, all caps, mixed case)
    content: bool  # neither a stop word nor punctuation


# -- tokens --------------------------------------------------------------------------
def tokenize(text: str) -> list[Token]:
    """Words with comparable keys: contractions expanded, times and numbers canonical
    (number words, "1,000", "10k"), units named once, other words stemmed."""
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    text = _TIME.sub(_time_token, text)
    text = _BARE_DECIMAL.sub(r"0.\1", text)  # ".5" is 0.5
    text = _FRACTION.sub(_decimal, text)  # "1/2" is 0.5
    raw = _TOKEN.findall(text)
    out: list[Token] = []
    sentence_start = True
    i = 0
    while i < len(raw):
        word = raw[i]
        lower = word.lower()
        after_number = bool(out) and (
            out[-1].role == "number"
            or out[-1].text.lower() in _DEGREES
            and len(out) > 1
            and out[-2].role == "number"
        )
        if lower.startswith("t__"):  # a time put in by _time_token
            out.append(Token(word, lower[3:], "time", False, True))
        elif _NUMBER.fullmatch(lower) or (
            (lower in _NUMBER_WORDS or lower == "a")
            and (lower not in ("one", "a") or _next(raw, i) in _MULTIPLIERS)
        ):  # "one" and "a" are numbers only before a multiplier: "a million"
            value, last = _read_number(raw, i)
            out.append(Token(" ".join(raw[i : last + 1]), value, "number", False, True))
            i = last
        elif (ordinal := _ordinal(lower)) is not None and _next(raw, i) in _CENTURY:
            # the 19th century is the 1800s
            out.append(
                Token(f"{word} {raw[i + 1]}", f"{(ordinal - 1) * 100}s", "number", False, True)
            )
            i += 1
        elif lower in _ORDINAL_WORDS:
            out.append(Token(word, str(_ORDINAL_WORDS[lower]), "number", False, True))
        elif (m := _NUMBER_WITH_SUFFIX.fullmatch(lower)) is not None:
            number, suffix = m.groups()
            if suffix in _ORDINAL_SUFFIXES:
                out.append(Token(word, canonical(float(number)), "number", False, True))
            elif suffix == "s" and number.isdigit() and int(number) % 10 == 0:
                out.append(Token(word, f"{int(number)}s", "number", False, True))  # a period
            elif suffix in _SUFFIX_MULTIPLIERS:
                out.append(
                    Token(
                        word,
                        canonical(float(number) * _SUFFIX_MULTIPLIERS[suffix]),
                        "number",
                        False,
                        True,
                    )
                )
            else:
                out.append(Token(word, canonical(float(number)), "number", False, True))
                if suffix in UNITS:
                    out.append(Token(word, UNITS[suffix], "unit", False, True))
                else:
                    out.append(Token(word, stem(suffix), "word", False, True))
        elif (
            lower in UNITS
            and (after_number or lower not in _AFTER_NUMBER_ONLY)
            and (not word.isupper() or len(word) < 2 or word in _CAPITALUNITS or after_number)
        ):
            out.append(Token(word, UNITS[lower], "unit", False, True))
        elif lower in _NEGATIONS:
            out.append(Token(word, lower, "negation", False, False))
        else:
            entity = _looks_like_name(word, sentence_start)
            content = lower not in stop_words() and (len(lower) > 1 or not lower.isalpha())
            content = content and lower not in _DEGREES
            out.append(Token(word, stem(lower), "word", entity, content))
            out.extend(  # numbers inside names and codes: "ES2015", "800x600"
                Token(digits, canonical(float(digits)), "number", False, True)
                for digits in _DIGITS.findall(lower)
                if not lower.isdigit()
            )
        sentence_start = False
        i += 1
    return out


def _read_number(raw: list[str], i: int) -> tuple[str, int]:
    """The value of the number starting at raw[i] and the index of its last token:
    digits ("1,000"; "3.8" and "3.80" stay apart, as versions do), digits with a
    multiplier ("2 million") or number words ("twenty five", "one hundred")."""
    first = raw[i].lower()
    if _NUMBER.fullmatch(first):
        text = first.replace(",", "")
        if not re.fullmatch(r"\d+(?:\.\d+)?", text):
            return text, i  # a version such as 3.12.1
        following = _next(raw, i)
        if following in _MULTIPLIERS:
            return canonical(float(text) * _MULTIPLIERS[following]), i + 1
        return (text if "." in text else canonical(float(text))), i
    total, current, j = 0.0, 0.0, i
    if first == "a":  # "a hundred", "a million"
        current, j = 1.0, i + 1
    while j < len(raw):
        word = raw[j].lower()
        if word in _NUMBER_WORDS and (j == i or current % 10 == 0 and current % 100 != 10):
            current += _NUMBER_WORDS[word]
        elif word == "hundred":
            current = max(current, 1.0) * 100
        elif word in _MULTIPLIERS:
            total, current = total + max(current, 1.0) * _MULTIPLIERS[word], 0.0
        elif word == "and" and [w.lower() for w in raw[j + 1 : j + 3]] == ["a", "half"]:
            current += 0.5
            j += 2
        elif not (word == "and" and j + 1 < len(raw) and raw[j + 1].lower() in _NUMBER_WORDS):
            break
        j += 1
    return canonical(total + current), j - 1


def _ordinal(word: str) -> int | None:
    """The value of an ordinal ("19th", "nineteenth"), else None."""
    if word in _ORDINAL_WORDS:
        return _ORDINAL_WORDS[word]
    m = _NUMBER_WITH_SUFFIX.fullmatch(word)
    if m is not None and m.group(2) in _ORDINAL_SUFFIXES and m.group(1).isdigit():
        return int(m.group(1))
    return None


def _next(raw: list[str], i: int) -> str:
    return raw[i + 1].lower() if i + 1 < len(raw) else ""


def canonical(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _decimal(match: re.Match[str]) -> str:
    return f" {canonical(int(match.group(1)) / int(match.group(2)))} "


def _time_token(match: re.Match[str]) -> str:
    if match.group(4) is not None:
        hour, minute = int(match.group(4)), int(match.group(5))
    else:
        hour, minute = int(match.group(1)) % 12, int(match.group(2) or 0)
        hour += 12 if match.group(3).lower() == "p" else 0
    return f" t__{hour:02d}{minute:02d} "


def _looks_like_name(word: str, sentence_start: bool) -> bool:
    if not word[:1].isalpha() or word.lower() in stop_words():
        return False
    if len(word) > 1 and word.isupper():
        return word != "I"
    if any(c.isupper() for c in word[1:]) or any(c.isdigit() for c in word):
        return True
    return word[0].isupper() and not sentence_start


# -- the word lists (loaded once) ----------------------------------------------------
@cache
def stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    auxiliaries = [
        "does",
        "did",
        "doing",
        "would",
        "could",
        "should",
        "can",
        "will",
        "may",
        "might",
        "must",
        "shall",
    ]
    fillers = [
        "please",
        "pls",
        "plz",
        "thanks",
        "thank",
        "thx",
        "hi",
        "hello",
        "hey",
        "lol",
        "ok",
        "okay",
        "um",
        "uh",
        "btw",
    ]
    return frozenset(ENGLISH_STOP_WORDS) | {"s", "t", *auxiliaries, *fillers}


@cache
def _stemmer() -> Callable[[str], str]:
    try:
        import snowballstemmer
    except ImportError as exc:  # a declared dependency: only a broken install lacks it
        raise DependencyError(
            "the cache's contrast check needs snowballstemmer: pip install snowballstemmer"
        ) from exc
    return snowballstemmer.stemmer("english").stemWord


@lru_cache(maxsize=100_000)
def stem(word: str) -> str:
    return _stemmer()(word)
