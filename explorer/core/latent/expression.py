"""A tiny, safe expression language over latent vectors: ``p123 + 1.5*smiling - glasses``.

Grammar (whitespace is free)::

    expr    := term (("+" | "-") term)*
    term    := unary (("*" | "/") unary)*
    unary   := ("-" | "+") unary | atom
    atom    := NUMBER | NAME | "(" expr ")"
    NUMBER  := 12 | 1.5 | .5 | 2. | 1e-3
    NAME    := a letter or "_", then letters, digits and "_"

A name is a named vector (an attribute vector, a saved group difference, ...) or ``pN``: the latent code of
data point N (the row index in the loaded data set, training rows first, as on the map).

Why a hand-written parser rather than ``eval`` or ``ast``: nothing typed here can ever run code, and every
rejection names the exact column and the reason ("function calls are not allowed") instead of Python's own
syntax messages. It only ever produces numbers and numpy vectors.

Typing rules, checked while evaluating: number +- number, vector +- vector (same size), number * vector,
vector * number, vector / number and number op number are fine; vector * vector, number / vector, vector +
number and division by zero are errors. The result must be a vector.

Every problem raises :class:`ExpressionError` (a ``ValueError``) with a one-line message and ``column``
(1-based, or None when it concerns the whole expression).
"""

from __future__ import annotations

import difflib
import keyword
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Union

import numpy as np

__all__ = [
    "Expression",
    "ExpressionError",
    "MAX_EXPRESSION_LENGTH",
    "POINT_NAME",
    "evaluate",
    "is_point_name",
    "parse",
]

MAX_EXPRESSION_LENGTH = 1000
_MAX_DEPTH = 100  # nesting limit: keeps the recursive parser far from Python's recursion limit
POINT_NAME = re.compile(r"p([0-9]+)\Z")


class ExpressionError(ValueError):
    """An expression could not be parsed or evaluated. ``str(err)`` is the user-facing message.

    ``column`` is the 1-based position of the problem in the expression (None when it concerns the whole
    expression, e.g. a result that is a number rather than a vector); ``expression`` is the text.
    """

    def __init__(self, message: str, column: int | None = None, expression: str = ""):
        where = f" (column {column})" if column is not None else ""
        super().__init__(message + where)
        self.message = message
        self.column = column
        self.expression = expression


def is_point_name(name: str) -> bool:
    """True for ``p0``, ``p123``, ...: names that refer to data points and can never name a vector."""
    return POINT_NAME.match(name) is not None


# ------------------------------------------------------------------ tokens
@dataclass(frozen=True)
class _Token:
    kind: str  # "num", "name", "op", "(", ")", "end"
    text: str
    col: int  # 1-based


# ASCII digits only: str.isdigit() is also true for "²" or "٣", which float() reads or the pattern does not.
_DIGITS = frozenset("0123456789")
_NUMBER = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Characters people type when they try Python (or another language) here, and why each is refused.
_REFUSED = {
    ".": "attribute access is not allowed",
    "[": "lists and subscripts are not allowed",
    "]": "lists and subscripts are not allowed",
    "{": "braces are not allowed",
    "}": "braces are not allowed",
    "'": "strings are not allowed",
    '"': "strings are not allowed",
    ",": "commas (tuples, arguments) are not allowed",
    "=": "assignments and comparisons are not allowed",
    "<": "comparisons are not allowed",
    ">": "comparisons are not allowed",
    "!": "comparisons are not allowed",
    ":": "colons (slices, lambdas) are not allowed",
    ";": "only one expression is allowed",
    "@": "decorators and matrix products are not allowed",
    "%": "the % operator is not supported",
    "^": "the ^ operator is not supported; there is no power operator",
    "&": "bitwise operators are not supported",
    "|": "bitwise operators are not supported",
    "~": "bitwise operators are not supported",
    "#": "comments are not allowed",
    "\\": "backslashes are not allowed",
    "`": "backticks are not allowed",
    "$": "'$' is not allowed",
    "?": "'?' is not allowed",
}


def _check_name(name: str, col: int, text: str) -> None:
    # Checked while tokenizing so that the first problem in reading order is the one reported.
    if name.startswith("__"):
        raise ExpressionError(f"names starting with '__' are not allowed ({name})", col, text)
    if keyword.iskeyword(name):
        raise ExpressionError(f"{name!r} is Python code, not a vector name", col, text)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        col = i + 1
        if ch.isspace():
            i += 1
            continue
        if ch in _DIGITS or (ch == "." and i + 1 < n and text[i + 1] in _DIGITS):
            m = _NUMBER.match(text, i)
            if m is None:  # cannot happen with the checks above; never an AssertionError for users
                raise ExpressionError(f"unexpected character {ch!r}", col, text)
            end = m.end()
            if end < n and (text[end].isalpha() or text[end] == "_"):
                raise ExpressionError(
                    f"a number directly followed by {text[end]!r}: write the multiplication, e.g. 2*smiling",
                    end + 1, text)
            if end < n and text[end] == ".":
                raise ExpressionError("attribute access is not allowed", end + 1, text)
            tokens.append(_Token("num", m.group(), col))
            i = end
            continue
        if ch.isalpha() or ch == "_" or (ch.isdigit() and ch not in _DIGITS):
            m = _NAME.match(text, i)
            if m is None:  # a non-ASCII letter: refuse it rather than guess
                what = "numbers use the digits 0-9" if ch.isdigit() else "names use ASCII letters, digits and _"
                raise ExpressionError(f"unexpected character {ch!r}; {what}", col, text)
            _check_name(m.group(), col, text)
            tokens.append(_Token("name", m.group(), col))
            i = m.end()
            continue
        if ch == "*" and text.startswith("**", i):
            raise ExpressionError("there is no power operator (**)", col, text)
        if ch == "/" and text.startswith("//", i):
            raise ExpressionError("floor division (//) is not supported; use /", col, text)
        if ch in "+-*/":
            tokens.append(_Token("op", ch, col))
            i += 1
            continue
        if ch in "()":
            tokens.append(_Token(ch, ch, col))
            i += 1
            continue
        reason = _REFUSED.get(ch, f"unexpected character {ch!r}")
        raise ExpressionError(reason, col, text)
    tokens.append(_Token("end", "", n + 1))
    return tokens


# ------------------------------------------------------------------ syntax tree
@dataclass(frozen=True)
class _Num:
    value: float
    col: int


@dataclass(frozen=True)
class _Name:
    name: str
    col: int


@dataclass(frozen=True)
class _Unary:
    op: str
    operand: "_Node"
    col: int


@dataclass(frozen=True)
class _Binary:
    op: str
    left: "_Node"
    right: "_Node"
    col: int  # the operator's column


_Node = Union[_Num, _Name, _Unary, _Binary]


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self) -> _Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def error(self, message: str, col: int) -> ExpressionError:
        return ExpressionError(message, col, self.text)

    def parse(self) -> _Node:
        if self.peek().kind == "end":
            raise self.error("the expression is empty", 1)
        node = self.expr()
        tok = self.peek()
        if tok.kind != "end":
            if tok.kind == ")":
                raise self.error("unmatched ')'", tok.col)
            raise self.error(f"expected an operator (+ - * /) before {tok.text!r}", tok.col)
        return node

    def expr(self) -> _Node:
        node = self.term()
        while self.peek().kind == "op" and self.peek().text in "+-":
            op = self.take()
            node = _Binary(op.text, node, self.term(), op.col)
        return node

    def term(self) -> _Node:
        node = self.unary()
        while self.peek().kind == "op" and self.peek().text in "*/":
            op = self.take()
            node = _Binary(op.text, node, self.unary(), op.col)
        return node

    def unary(self) -> _Node:
        tok = self.peek()
        if tok.kind == "op" and tok.text in "+-":
            self.take()
            self.enter(tok)
            try:
                return _Unary(tok.text, self.unary(), tok.col)
            finally:
                self.depth -= 1
        return self.atom()

    def enter(self, tok: _Token) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.error(f"the expression nests more than {_MAX_DEPTH} levels deep", tok.col)

    def atom(self) -> _Node:
        tok = self.take()
        if tok.kind == "num":
            value = float(tok.text)
            if not math.isfinite(value):
                raise self.error(f"the number {tok.text} is too large", tok.col)
            return _Num(value, tok.col)
        if tok.kind == "name":
            nxt = self.peek()
            if nxt.kind == "(":
                raise self.error(f"function calls are not allowed ({tok.text}(...))", nxt.col)
            if nxt.kind in ("name", "num"):
                raise self.error(f"expected an operator (+ - * /) before {nxt.text!r}", nxt.col)
            return _Name(tok.text, tok.col)
        if tok.kind == "(":
            self.enter(tok)
            try:
                if self.peek().kind == ")":
                    raise self.error("empty parentheses", self.peek().col)
                node = self.expr()
            finally:
                self.depth -= 1
            close = self.take()
            if close.kind != ")":
                if close.kind == "end":
                    raise self.error("'(' is never closed", tok.col)
                raise self.error(f"expected ')' or an operator before {close.text!r}", close.col)
            if self.peek().kind in ("(", "name", "num"):
                raise self.error("expected an operator (+ - * /) after ')'", self.peek().col)
            return node
        if tok.kind == "end":
            raise self.error("the expression ends too early: a number or name is missing", tok.col)
        if tok.kind == ")":
            raise self.error("unmatched ')'" if self.depth == 0 else "a number or name is missing before ')'",
                             tok.col)
        raise self.error(f"a number or name is missing before {tok.text!r}", tok.col)



# ------------------------------------------------------------------ evaluation
_Value = Union[float, np.ndarray]


@dataclass(frozen=True)
class _Typed:
    value: _Value
    label: str  # how to name this operand in a message: 'smiling', 'p3', 'a number', '(...)'

    @property
    def is_vector(self) -> bool:
        return isinstance(self.value, np.ndarray)


Points = Union[np.ndarray, Callable[[int], np.ndarray], Mapping[int, np.ndarray], None]


class Expression:
    """A parsed expression. Parse once, evaluate whenever the named vectors or points change."""

    def __init__(self, text: str):
        if not isinstance(text, str):
            raise ExpressionError(f"an expression must be text, got {type(text).__name__}")
        if len(text) > MAX_EXPRESSION_LENGTH:
            raise ExpressionError(f"the expression is too long ({len(text)} characters, at most "
                                  f"{MAX_EXPRESSION_LENGTH})", None, text)
        self.text = text
        self._tree = _Parser(text).parse()

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    @property
    def names(self) -> list[str]:
        """Vector names used (not points), in order of first appearance."""
        return [n for n in self._all_names() if not is_point_name(n)]

    @property
    def points(self) -> list[int]:
        """Data point indices used (``p12`` -> 12), in order of first appearance."""
        return [int(n[1:]) for n in self._all_names() if is_point_name(n)]

    def _all_names(self) -> list[str]:
        seen: dict[str, None] = {}
        stack: list[_Node] = [self._tree]
        order: list[_Name] = []
        while stack:
            node = stack.pop()
            if isinstance(node, _Name):
                order.append(node)
            elif isinstance(node, _Unary):
                stack.append(node.operand)
            elif isinstance(node, _Binary):
                stack += [node.right, node.left]
        for node in order:
            seen.setdefault(node.name, None)
        return list(seen)

    def evaluate(self, vectors: Mapping[str, np.ndarray] | None = None, points: Points = None, *,
                 latent_dim: int | None = None) -> np.ndarray:
        """The latent vector the expression stands for: float32 (D,).

        vectors: name -> (D,) vector (a dict, or a :class:`~explorer.core.latent.arithmetic.NamedVectors`).
        points: the data set's latent codes (N, D), or a callable / mapping index -> (D,) vector.
        latent_dim: when given, every vector must have this size (the current model's).
        """
        ev = _Evaluator(self.text, vectors or {}, points, latent_dim)
        result = ev.eval(self._tree)
        if not result.is_vector:
            raise ExpressionError(
                f"the expression is a number ({_fmt(result.value)}), not a latent vector; "
                "use a vector name or a point such as p0", None, self.text)
        out = np.asarray(result.value, dtype=np.float32)
        if not np.all(np.isfinite(out)):
            raise ExpressionError("the result contains infinite or NaN values", None, self.text)
        return out


def _fmt(x: float) -> str:
    return f"{x:g}"


class _Evaluator:
    def __init__(self, text: str, vectors: Mapping[str, np.ndarray], points: Points, latent_dim: int | None):
        self.text = text
        self.vectors = vectors
        self.points = points
        self.latent_dim = latent_dim
        self.size_source: tuple[int, str] | None = None  # (size, label) of the first vector seen

    def error(self, message: str, col: int | None) -> ExpressionError:
        return ExpressionError(message, col, self.text)

    def eval(self, node: _Node) -> _Typed:
        # Iterative (post-order with an explicit stack): "1*1*...*p0" within the length limit is a tree
        # ~500 deep, which recursion would turn into a RecursionError.
        values: list[_Typed] = []
        stack: list[tuple[_Node, bool]] = [(node, False)]
        while stack:
            current, ready = stack.pop()
            if isinstance(current, _Num):
                values.append(_Typed(current.value, "a number"))
            elif isinstance(current, _Name):
                values.append(_Typed(self.lookup(current), current.name))
            elif not ready:
                stack.append((current, True))
                if isinstance(current, _Unary):
                    stack.append((current.operand, False))
                else:
                    stack += [(current.right, False), (current.left, False)]
            elif isinstance(current, _Unary):
                inner = values.pop()
                value = -inner.value if current.op == "-" else inner.value
                values.append(_Typed(value, inner.label if inner.is_vector else "a number"))
            else:
                b = values.pop()
                a = values.pop()
                values.append(self.binary(current, a, b))
        return values[0]

    def binary(self, node: _Binary, a: _Typed, b: _Typed) -> _Typed:
        op, col = node.op, node.col
        label = "(...)"
        if op in "+-":
            if a.is_vector != b.is_vector:
                vec, num = (a, b) if a.is_vector else (b, a)
                raise self.error(
                    f"cannot {'add' if op == '+' else 'subtract'} a number and a vector ({vec.label}); "
                    "scale vectors with * instead", col)
            value = a.value + b.value if op == "+" else a.value - b.value
            return _Typed(value, label if a.is_vector else "a number")
        if op == "*":
            if a.is_vector and b.is_vector:
                raise self.error(f"cannot multiply two vectors ({a.label} * {b.label}); "
                                 "multiply a vector by a number", col)
            return _Typed(a.value * b.value, label if (a.is_vector or b.is_vector) else "a number")
        # division
        if b.is_vector:
            raise self.error(f"cannot divide by a vector ({b.label}); divide by a number", col)
        if b.value == 0.0:
            raise self.error("division by zero", col)
        value = a.value / b.value
        return _Typed(value, label if a.is_vector else "a number")

    def check_size(self, vec: np.ndarray, label: str, col: int) -> np.ndarray:
        v = np.asarray(vec, dtype=np.float64)
        if v.ndim != 1:
            raise self.error(f"{label} is not a 1-D latent vector (shape {v.shape})", col)
        if self.latent_dim is not None and v.shape[0] != self.latent_dim:
            raise self.error(f"{label} has {v.shape[0]} values but the model's latent space has "
                             f"{self.latent_dim}", col)
        if self.size_source is None:
            self.size_source = (v.shape[0], label)
        elif self.size_source[0] != v.shape[0]:
            size, first = self.size_source
            raise self.error(f"mismatched latent sizes: {first} has {size} values but {label} has {v.shape[0]}",
                             col)
        return v

    def lookup(self, node: _Name) -> np.ndarray:
        name, col = node.name, node.col
        m = POINT_NAME.match(name)
        if m is not None:
            return self.check_size(self.point(int(m.group(1)), name, col), name, col)
        if name in self.vectors:
            return self.check_size(self.vectors[name], name, col)
        # A case-insensitive match that is unique is almost surely what was meant (CelebA's "Smiling").
        folded = [k for k in self.vectors if k.lower() == name.lower()]
        if len(folded) == 1:
            return self.check_size(self.vectors[folded[0]], folded[0], col)
        raise self.error(self.unknown_message(name), col)

    def unknown_message(self, name: str) -> str:
        known = sorted(self.vectors)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        if not close:
            lower = {k.lower(): k for k in known}
            close = [lower[k] for k in difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.6)]
        msg = f"unknown name {name!r}"
        if close:
            msg += "; did you mean " + " or ".join(repr(c) for c in close) + "?"
        elif known:
            shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
            msg += f"; known vectors: {shown}; points are written p0, p1, ..."
        else:
            msg += "; no named vectors yet; points are written p0, p1, ..."
        return msg

    def point(self, index: int, name: str, col: int) -> np.ndarray:
        pts = self.points
        if pts is None:
            raise self.error(f"{name} refers to a data point, but no data set is loaded", col)
        if isinstance(pts, np.ndarray):
            if pts.ndim != 2:
                raise self.error(f"the data set's latent codes must be (N, D), got shape {pts.shape}", col)
            if index >= len(pts):
                raise self.error(f"{name} is out of range: the data set has points p0 to p{len(pts) - 1}"
                                 if len(pts) else f"{name} is out of range: the data set is empty", col)
            return pts[index]
        if isinstance(pts, Mapping):
            if index not in pts:
                raise self.error(f"{name} is not an available data point", col)
            return np.asarray(pts[index])
        try:
            return np.asarray(pts(index))
        except (IndexError, KeyError) as exc:
            raise self.error(f"{name} is out of range ({exc})", col) from None


def parse(text: str) -> Expression:
    """Parse ``text`` (raising :class:`ExpressionError` for anything outside the grammar)."""
    return Expression(text)


def evaluate(text: str, vectors: Mapping[str, np.ndarray] | None = None, points: Points = None, *,
             latent_dim: int | None = None) -> np.ndarray:
    """Parse and evaluate in one go; see :meth:`Expression.evaluate`."""
    return Expression(text).evaluate(vectors, points, latent_dim=latent_dim)


