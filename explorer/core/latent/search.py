"""Search the points of a map: by index, label, attribute value or name (TensorBoard projector style).

One query string, whitespace-separated terms, all of which must match (AND):

==========================  ==================================================================================
term                        matches
==========================  ==================================================================================
``#12``, ``#10-19``         data point 12, points 10 to 19 (inclusive)
``label:smiling``           points whose label name is ``smiling`` (case-insensitive); ``label:3`` by number
``smiling>0.5``             an attribute compared with a number: ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``
``name:cat``                points whose name (a dropped image's file name) contains ``cat``
``word``                    a label name equal to ``word``; else a name containing it; else, for a whole
                            number, that index
==========================  ==================================================================================

:func:`search` returns the matching indices in increasing order (a GUI highlights them and frames the view on
them); a malformed term or an unknown attribute raises :class:`SearchError` naming it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SearchError", "SearchResult", "search"]

MAX_QUERY = 1000  # characters: a bound on the work a query can ask for

_OPS = {"<=": operator.le, ">=": operator.ge, "!=": operator.ne, "=": operator.eq, "<": operator.lt,
        ">": operator.gt}
_COMPARISON = re.compile(r"^([A-Za-z_][\w.]*)(<=|>=|!=|=|<|>)(.+)$")
_RANGE = re.compile(r"^#(\d+)(?:-(\d+))?$")


class SearchError(ValueError):
    """A query term that cannot be understood (the message names it)."""


@dataclass
class SearchResult:
    indices: np.ndarray  # (M,) int64, increasing
    terms: list[str] = field(default_factory=list)  # how each term was read, for a status line

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def description(self) -> str:
        return f"{len(self.indices)} match{'es' if len(self.indices) != 1 else ''}: " + " and ".join(self.terms)


def _label_mask(labels: np.ndarray | None, label_names: Sequence[str], value: str) -> np.ndarray | None:
    if labels is None:
        return None
    names = [str(n).lower() for n in label_names]
    v = value.lower()
    if v in names:
        return labels == names.index(v)
    if re.fullmatch(r"-?\d+", v) and not names:
        return labels == int(v)
    if re.fullmatch(r"\d+", v) and int(v) < len(names):
        return labels == int(v)
    return None


def search(query: str, n: int, *, labels: np.ndarray | None = None, label_names: Sequence[str] = (),
           attributes: np.ndarray | None = None, attribute_names: Sequence[str] = (),
           names: Sequence[str | None] | None = None) -> SearchResult:
    """Indices in ``range(n)`` matching every term of ``query`` (see the module docstring).

    ``labels`` (n,) ints with ``label_names``; ``attributes`` (n, A) with ``attribute_names``; ``names`` (n,)
    strings or None (e.g. the file names of dropped images, None for data points). An empty query matches
    nothing.
    """
    if not isinstance(query, str):
        raise SearchError(f"a search query is text, got {type(query).__name__}")
    if len(query) > MAX_QUERY:
        raise SearchError(f"the search query is too long ({len(query)} characters, at most {MAX_QUERY})")
    n = int(n)
    lab = None if labels is None else np.asarray(labels).reshape(-1)
    att = None if attributes is None else np.asarray(attributes, np.float64)
    for what, arr in (("labels", lab), ("attributes", att), ("names", names)):
        if arr is not None and len(arr) != n:
            raise SearchError(f"{what} has {len(arr)} entries but there are {n} points")
    attr_lookup = {str(a).lower(): i for i, a in enumerate(attribute_names)}
    lowered = None if names is None else [("" if s is None else str(s)).lower() for s in names]
    mask = np.ones(n, bool)
    read: list[str] = []
    terms = query.split()
    if not terms:
        return SearchResult(np.zeros(0, np.int64), [])
    for term in terms:
        m = _RANGE.match(term)
        if m:
            lo = int(m.group(1))
            hi = int(m.group(2)) if m.group(2) else lo
            if hi < lo:
                raise SearchError(f"{term!r}: the range's end is before its start")
            idx = np.arange(n)
            mask &= (idx >= lo) & (idx <= hi)
            read.append(f"index {lo}" if lo == hi else f"index {lo}-{hi}")
            continue
        key, sep, value = term.partition(":")
        if sep and key.lower() == "label":
            got = _label_mask(lab, label_names, value)
            if got is None:
                known = ", ".join(label_names) if label_names else "none"
                raise SearchError(f"{term!r}: no label {value!r} (labels: {known})")
            mask &= got
            read.append(f"label {value}")
            continue
        if sep and key.lower() == "name":
            if lowered is None:
                raise SearchError(f"{term!r}: these points have no names")
            mask &= np.array([value.lower() in s for s in lowered], bool)
            read.append(f"name contains {value!r}")
            continue
        m = _COMPARISON.match(term)
        if m:
            attr, op, number = m.groups()
            if att is None or attr.lower() not in attr_lookup:
                known = ", ".join(attribute_names) if len(attribute_names) else "none"
                raise SearchError(f"{term!r}: unknown attribute {attr!r} (attributes: {known})")
            try:
                x = float(number)
            except ValueError:
                raise SearchError(f"{term!r}: {number!r} is not a number") from None
            col = att[:, attr_lookup[attr.lower()]]
            mask &= _OPS[op](col, x)
            read.append(f"{attr} {op} {x:g}")
            continue
        got = _label_mask(lab, label_names, term) if not re.fullmatch(r"\d+", term) or label_names else None
        if got is not None:
            mask &= got
            read.append(f"label {term}")
            continue
        if lowered is not None and any(term.lower() in s for s in lowered):
            mask &= np.array([term.lower() in s for s in lowered], bool)
            read.append(f"name contains {term!r}")
            continue
        if re.fullmatch(r"\d+", term):
            i = int(term)
            mask &= np.arange(n) == i
            read.append(f"index {i}")
            continue
        raise SearchError(f"{term!r} matches no label, name or index; try label:NAME, ATTRIBUTE>VALUE, #INDEX "
                          "or name:TEXT")
    return SearchResult(np.flatnonzero(mask).astype(np.int64), read)
