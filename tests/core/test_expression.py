import numpy as np
import pytest

from explorer.core.latent.expression import Expression, ExpressionError, evaluate, parse

VECS = {"smiling": np.array([1.0, 0.0, 0.0, 2.0]), "glasses": np.array([0.0, 1.0, 0.0, 0.0]),
        "Smile_2": np.array([0.0, 0.0, 3.0, 0.0])}
POINTS = np.arange(20, dtype=np.float32).reshape(5, 4)


@pytest.mark.parametrize("text,expected", [
    ("p3 + 1.5*smiling - glasses", POINTS[3] + 1.5 * VECS["smiling"] - VECS["glasses"]),
    ("(p1 + p2)/2", (POINTS[1] + POINTS[2]) / 2),
    ("-smiling", -VECS["smiling"]),
    ("--smiling", VECS["smiling"]),
    ("+glasses*2", 2 * VECS["glasses"]),
    ("2*3*glasses - smiling/4", 6 * VECS["glasses"] - VECS["smiling"] / 4),
    ("p0 - p0 + .5e1*glasses", 5 * VECS["glasses"]),
    ("p4+(p1-p2)", POINTS[4] + POINTS[1] - POINTS[2]),  # an analogy
    ("(1 - 2 - 3) * -glasses", 4 * VECS["glasses"]),  # left associative: (1 - 2) - 3 = -4
    ("12 / 3 / 2 * glasses", 2 * VECS["glasses"]),
    ("smile_2 + SMILING", VECS["Smile_2"] + VECS["smiling"]),  # a unique case-insensitive match
])
def test_evaluates_like_arithmetic(text, expected):
    got = evaluate(text, VECS, POINTS)
    assert got.dtype == np.float32 and got.shape == (4,)
    assert np.allclose(got, expected, atol=1e-6)


def test_precedence_and_names():
    e = parse("p1 + 2*smiling - p1 + p3 - glasses")
    assert e.names == ["smiling", "glasses"] and e.points == [1, 3]
    assert np.allclose(e.evaluate(VECS, POINTS), 2 * VECS["smiling"] + POINTS[3] - VECS["glasses"])
    # points may also come from a callable (the GUI encodes on demand)
    assert np.allclose(evaluate("p2", {}, lambda i: POINTS[i] * 10), POINTS[2] * 10)


@pytest.mark.parametrize("code,reason", [
    ("__import__('os')", "__"),
    ("__import__('os').system('ls')", "__"),
    ("a.b", "attribute access"),
    ("smiling.__class__", "attribute access"),
    ("f(x)", "function calls"),
    ("open('x')", "strings|function calls"),
    ("[1]", "lists and subscripts"),
    ("smiling[0]", "subscripts"),
    ("lambda: 0", "Python code"),
    ("lambda x: x", "Python code"),
    ("'smiling'", "strings"),
    ('"abc"', "strings"),
    ("import os", "Python code"),
    ("x if y else z", "Python code"),
    ("smiling; glasses", "only one expression"),
    ("p1 ** 2", "power"),
    ("a == b", "comparisons"),
    ("{1: 2}", "braces"),
    ("smiling, glasses", "commas"),
    ("eval", "unknown name"),
])
def test_rejects_code(code, reason):
    with pytest.raises(ExpressionError, match=reason) as info:
        evaluate(code, {"a": np.zeros(4), "b": np.zeros(4), **VECS}, POINTS)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("text,message,column", [
    ("smilng + p1", r"unknown name 'smilng'; did you mean 'smiling'\?", 1),
    ("p1 + nothing_like_it", "unknown name 'nothing_like_it'; known vectors: Smile_2, glasses, smiling", 6),
    ("smiling * glasses", "cannot multiply two vectors", 9),
    ("smiling / 0", "division by zero", 9),
    ("smiling / (1 - 1)", "division by zero", 9),
    ("2 / smiling", "cannot divide by a vector", 3),
    ("smiling + 1", "cannot add a number and a vector", 9),
    ("p1 +", "ends too early", 5),
    ("(p1 + p2", r"'\(' is never closed", 1),
    ("p1 + p2)", r"unmatched '\)'", 8),
    ("p1 p2", "expected an operator", 4),
    ("2smiling", r"write the multiplication", 2),
    ("p9", "out of range: the data set has points p0 to p4", 1),
    ("3 * 4", "is a number", None),
    ("", "empty", 1),
    ("()", "empty parentheses", 2),
])
def test_clear_errors_with_columns(text, message, column):
    with pytest.raises(ExpressionError, match=message) as info:
        evaluate(text, VECS, POINTS)
    assert info.value.column == column


def test_mismatched_latent_sizes():
    vecs = {"small": np.zeros(3), **VECS}
    with pytest.raises(ExpressionError, match="mismatched latent sizes: smiling has 4 values but small has 3"):
        evaluate("smiling + small", vecs)
    with pytest.raises(ExpressionError, match="has 4 values but the model's latent space has 8"):
        evaluate("smiling", VECS, latent_dim=8)


def test_points_need_a_dataset_and_limits_hold():
    with pytest.raises(ExpressionError, match="no data set is loaded"):
        evaluate("p0", VECS)
    with pytest.raises(ExpressionError, match="too long"):
        Expression("p0+" * 400 + "p0")
    with pytest.raises(ExpressionError, match="nests more than"):
        Expression("(" * 150 + "p0" + ")" * 150)
    with pytest.raises(ExpressionError, match="nests more than"):
        Expression("-" * 150 + "p0")
