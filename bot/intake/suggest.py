"""Which category is this? Rank the responsibility list for a short description.

A grid worker types a line such as 小区门口有车辆违停，堵住了消防通道 (or, now and then,
English) and the bot shows the likeliest categories first. Plain functions: the caller
passes the categories (in file order, or as the :class:`Catalogue` :func:`prepare` made of
them once) and the worker's recent category ids.

Scoring, per category:
  * Chinese terms (anything with a non-ASCII character) match as substrings, since Chinese
    has no spaces: each keyword weighs its length in characters, the full Chinese name
    its length + 1, and each 2-character piece of the name 1 (shared by n names: 1/n).
  * English terms match whole words, case-insensitively, with plural/-ed/-ing forms:
    a keyword weighs 2 per word; in the English name each significant word weighs 1 and
    each pair of adjacent ones 2 (shared by n names: 1/n).
  * Inside one category a match within a longer, no lighter match of its own counts no
    more (消防 inside 消防通道); a match within a longer match of another category counts
    half (垃圾 inside 垃圾堆 says little for 垃圾分类). Each term counts once.
  * The worker's recent categories (most recent first) get 1.5, 1.05, 0.74, … — less
    than one two-character keyword, so text wins, and alone they order the list when
    the description matches nothing.
  * Ties keep the order of the list.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

RECENT_BONUS = 1.5
RECENT_DECAY = 0.7
CROSS_CATEGORY_FACTOR = 0.5

_WORD = re.compile(r"[a-z0-9]+")
_SPACE = re.compile(r"\s+")
_EN_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "or",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "with",
        "by",
        "from",
        "as",
        "is",
        "are",
        "be",
        "not",
        "no",
        "its",
        "it",
        "this",
        "that",
    ]
)
_SUFFIXES = ("ing", "ed", "es", "s", "d")


@dataclass(frozen=True)
class CategoryInfo:
    category_id: int
    code: str
    name_zh: str
    name_en: str
    platform: str
    keywords: tuple[str, ...] = ()


# A term is (kind, text, weight, shared) with kind "zh" (substring) or "en" (word
# sequence); shared terms (name pieces) are divided by how many categories have them.
_Term = tuple[str, object, float, bool]


def _norm(text: str) -> str:
    """NFKC (full-width letters and punctuation to plain ones), lower case."""
    return unicodedata.normalize("NFKC", text or "").lower()


def _is_english(term: str) -> bool:
    return term.isascii()


def _is_cjk(ch: str) -> bool:
    return ch > "\u2e7f" and unicodedata.category(ch).startswith("L")  # CJK and kana, not punctuation


@lru_cache(maxsize=4096)
def _forms(word: str) -> frozenset[str]:
    """A word with common English endings taken off: parking/parked/parks → park."""
    forms = {word}
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)]
            forms.add(base)
            forms.add(base + "e")  # dumped/dumping → dump(e); noises → noise
    return frozenset(forms)


@lru_cache(maxsize=2048)
def _terms(cat: CategoryInfo) -> tuple[_Term, ...]:
    best: dict[tuple[str, object], tuple[float, bool]] = {}

    def add(kind: str, key: object, weight: float, shared: bool) -> None:
        old = best.get((kind, key))
        if old is None or weight > old[0]:
            best[(kind, key)] = (weight, shared)

    for raw in cat.keywords:
        kw = _SPACE.sub(" ", _norm(raw)).strip()
        if not kw:
            continue
        if _is_english(kw):
            words = tuple(_WORD.findall(kw))
            if words:
                add("en", words, 2.0 * len(words), False)
        else:
            kw = kw.replace(" ", "")
            add("zh", kw, 0.5 if len(kw) == 1 else float(len(kw)), False)

    name = _SPACE.sub("", _norm(cat.name_zh))
    if name:
        add("zh", name, len(name) + 1.0, False)
        for i in range(len(name) - 1):
            piece = name[i : i + 2]
            if _is_cjk(piece[0]) and _is_cjk(piece[1]):
                add("zh", piece, 1.0, True)

    words = tuple(_WORD.findall(_norm(cat.name_en)))
    significant = [len(w) >= 3 and w not in _EN_STOPWORDS for w in words]
    for i, w in enumerate(words):
        if significant[i]:
            add("en", (w,), 1.0, True)
            if i + 1 < len(words) and significant[i + 1]:  # "street light" in "Street light out"
                add("en", (w, words[i + 1]), 2.0, True)
    return tuple((kind, key, weight, shared) for (kind, key), (weight, shared) in best.items())


def _zh_spans(text: str, term: str) -> list[tuple[int, int]]:
    spans = []
    start = text.find(term)
    while start >= 0:
        spans.append((start, start + len(term)))
        start = text.find(term, start + 1)
    return spans


def _en_spans(tokens: list[tuple[frozenset[str], int, int]], words: tuple[str, ...]) -> list[tuple[int, int]]:
    n = len(words)
    spans = []
    for i in range(len(tokens) - n + 1):
        if all(tokens[i + j][0] & _forms(words[j]) for j in range(n)):
            spans.append((tokens[i][1], tokens[i + n - 1][2]))
    return spans


@dataclass(frozen=True)
class Catalogue:
    """The categories' terms, worked out once per list (it changes only on an import), with
    each term found by its first character (Chinese) or by the forms of its first word
    (English): a description is checked against the few terms that can match it."""

    cats: tuple[CategoryInfo, ...]
    terms: tuple[tuple[_Term, ...], ...]
    shared: Counter[tuple[str, object]]
    zh_by_first: dict[str, list[tuple[int, int]]]  # character → (category, term) positions
    en_by_form: dict[str, list[tuple[int, int]]]  # a form of a first word → positions


def prepare(categories: Sequence[CategoryInfo]) -> Catalogue:
    cats: list[CategoryInfo] = []
    seen: set[int] = set()
    for cat in categories:
        if cat.category_id not in seen:
            seen.add(cat.category_id)
            cats.append(cat)
    terms = tuple(_terms(cat) for cat in cats)
    shared = Counter((kind, key) for of_cat in terms for kind, key, _w, is_shared in of_cat if is_shared)
    zh_by_first: dict[str, list[tuple[int, int]]] = {}
    en_by_form: dict[str, list[tuple[int, int]]] = {}
    for c, of_cat in enumerate(terms):
        for t, (kind, key, _w, _s) in enumerate(of_cat):
            if kind == "zh":
                zh_by_first.setdefault(cast(str, key)[0], []).append((c, t))
            else:
                for form in _forms(cast(tuple[str, ...], key)[0]):
                    en_by_form.setdefault(form, []).append((c, t))
    return Catalogue(tuple(cats), terms, shared, zh_by_first, en_by_form)


def score_categories(
    description: str,
    categories: Sequence[CategoryInfo] | Catalogue,
    recent_category_ids: Sequence[int] = (),
) -> list[tuple[int, float]]:
    """Every category as (category_id, score), best first; ties keep the list order."""
    book = categories if isinstance(categories, Catalogue) else prepare(categories)
    cats = book.cats
    seen = {cat.category_id for cat in cats}

    text = _norm(description)
    dense = _SPACE.sub("", text)  # Chinese matching ignores spaces: 消防 通道
    tokens = [(_forms(m.group()), m.start(), m.end()) for m in _WORD.finditer(text)]
    # The terms that can match at all, each category's in its own order (ties keep it).
    candidates: set[tuple[int, int]] = set()
    for ch in set(dense):
        candidates.update(book.zh_by_first.get(ch, ()))
    for form in {form for forms, _s, _e in tokens for form in forms}:
        candidates.update(book.en_by_form.get(form, ()))
    wanted: list[list[int]] = [[] for _ in cats]
    for c, t in sorted(candidates):
        wanted[c].append(t)

    # matches[c] = [(kind, start, end, weight, term)], kept after in-category containment
    matches: list[list[tuple[str, int, int, float, object]]] = []
    for of_cat, positions in zip(book.terms, wanted, strict=True):
        found: list[tuple[str, int, int, float, object]] = []
        for t in positions:
            kind, key, weight, shared = of_cat[t]
            if kind == "zh":
                spans = _zh_spans(dense, cast(str, key))
            else:
                spans = _en_spans(tokens, cast(tuple[str, ...], key))
            if spans and shared:
                weight /= book.shared[(kind, key)]
            found.extend((kind, s, e, weight, key) for s, e in spans)
        found.sort(key=lambda m: (-(m[2] - m[1]), -m[3]))
        kept: list[tuple[str, int, int, float, object]] = []
        for m in found:
            if not any(k[0] == m[0] and k[1] <= m[1] and m[2] <= k[2] and k[3] >= m[3] for k in kept):
                kept.append(m)
        matches.append(kept)

    recent_rank: dict[int, int] = {}
    for cid in recent_category_ids:
        if cid in seen and cid not in recent_rank:
            recent_rank[cid] = len(recent_rank)

    scored = []
    for c, (cat, kept) in enumerate(zip(cats, matches, strict=False)):
        per_term: dict[tuple[str, object], float] = {}
        for kind, s, e, weight, key in kept:
            inside_other = any(
                o != c and k[0] == kind and k[1] <= s and e <= k[2] and k[2] - k[1] > e - s
                for o, other in enumerate(matches)
                for k in other
            )
            w = weight * CROSS_CATEGORY_FACTOR if inside_other else weight
            if w > per_term.get((kind, key), 0.0):
                per_term[(kind, key)] = w
        score = float(sum(per_term.values()))
        if cat.category_id in recent_rank:
            score += RECENT_BONUS * RECENT_DECAY ** recent_rank[cat.category_id]
        scored.append((round(score, 9), c, cat.category_id))
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [(cid, score) for score, _c, cid in scored]


def suggest(
    description: str,
    categories: Sequence[CategoryInfo] | Catalogue,
    recent_category_ids: Sequence[int] = (),
    limit: int = 6,
) -> list[int]:
    """Up to `limit` category ids, likeliest first (see the module notes for the scoring).

    Always fills up to the limit from the list, so the worker sees a full menu even when
    nothing matched; never an unknown id or one twice.
    """
    if limit <= 0:
        return []
    return [cid for cid, _score in score_categories(description, categories, recent_category_ids)[:limit]]
