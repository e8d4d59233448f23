"""The expression language of condition nodes and the calculator tool: what it computes and what it refuses."""

from __future__ import annotations

import builtins
from typing import Any

import pytest

from apps.agents.expressions import ExpressionError, evaluate, names, validate

VARIABLES: dict[str, Any] = {
    "user": {"name": "Ada", "tags": ["admin", "beta"], "profile": {"age": 36, "email": None}},
    "items": [{"price": 2.5, "qty": 2}, {"price": 10, "qty": 1}],
    "n": 7,
    "s": "Hello",
    "x": {"y": 1},
}


def run(expression: str) -> Any:
    return evaluate(expression, VARIABLES)


def error_of(expression: str, variables: dict[str, Any] | None = None) -> str:
    with pytest.raises(ExpressionError) as caught:
        evaluate(expression, VARIABLES if variables is None else variables)
    return str(caught.value)


# --- What it computes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("42", 42),
        ("-1.5", -1.5),
        ("'single' + \"double\"", "singledouble"),
        ("True", True),
        ("False", False),
        ("None", None),
        ("true", True),
        ("false", False),
        ("null", None),
        ("[1, 'a', null, [true]]", [1, "a", None, [True]]),
        ("{'a': 1, 'b': [false], 2: 'two'}", {"a": 1, "b": [False], 2: "two"}),
        ("[]", []),
        ("{}", {}),
    ],
)
def test_it_evaluates_literals(expression, expected):
    assert run(expression) == expected


def test_it_treats_true_false_null_as_literals_even_when_a_variable_has_that_name():
    assert evaluate("true == 1 and false == 0 and null == None", {"true": 5, "false": 5, "null": 5}) is True


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("n", 7),
        ("user.name", "Ada"),
        ("user.profile.age", 36),
        ("user.profile.email", None),
        ("user['profile']['age']", 36),
        ("user.tags[0]", "admin"),
        ("user.tags[-1]", "beta"),
        ("items[1].price", 10),
        ("items[0]['qty']", 2),
        ("s[0]", "H"),
        ("s[-1]", "o"),
        ("{'k': [10, 20]}.k[1]", 20),
        ("user[x.y == 1 and 'name' or 'tags']", "Ada"),
        ("[1, 2, 3][n - 6]", 2),
    ],
)
def test_it_reads_variables_members_and_subscripts(expression, expected):
    assert run(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("s[1:3]", "el"),
        ("s[:2]", "He"),
        ("s[-3:]", "llo"),
        ("s[::2]", "Hlo"),
        ("s[::-1]", "olleH"),
        ("user.tags[0:1]", ["admin"]),
        ("[1, 2, 3, 4][1:100]", [2, 3, 4]),
    ],
)
def test_it_slices_strings_and_lists(expression, expected):
    assert run(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 4 - 3", 3),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("7.5 % 2", 1.5),
        ("-n", -7),
        ("+n", 7),
        ("- -n", 7),
        ("items[0].price * items[0].qty + items[1].price", 15.0),
        ("'ab' + 'cd'", "abcd"),
        ("[1] + [2, 3]", [1, 2, 3]),
        ("'ab' * 3", "ababab"),
        ("3 * 'ab'", "ababab"),
        ("[0] * 3", [0, 0, 0]),
        ("'ab' * -1", ""),
        ("[[1, 2]] * 2", [[1, 2], [1, 2]]),
        ("true + true", 2),
    ],
)
def test_it_applies_arithmetic_operators(expression, expected):
    assert run(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("n == 7", True),
        ("n != 7", False),
        ("n < 8", True),
        ("n <= 7", True),
        ("n > 7", False),
        ("n >= 7", True),
        ("'abc' < 'abd'", True),
        ("[1, 2] < [1, 3]", True),
        ("1 == 1.0", True),
        ("'a' == 1", False),
        ("null == None", True),
        ("'admin' in user.tags", True),
        ("'root' not in user.tags", True),
        ("'ell' in s", True),
        ("'name' in user", True),
        ("'missing' in user", False),
        ("[1] in user", False),
        ("1 < n < 10", True),
        ("1 < n < 5", False),
        ("0 <= n == 7 != 8", True),
    ],
)
def test_it_compares_and_chains_comparisons(expression, expected):
    assert run(expression) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("true and true", True),
        ("true and false", False),
        ("false or true", True),
        ("not false", True),
        ("not n", False),
        ("not []", True),
        ("0 or 'fallback'", "fallback"),
        ("'' and 1", ""),
        ("n > 5 and s == 'Hello' and 'beta' in user.tags", True),
        ("n if n > 5 else 0", 7),
        ("'big' if n > 100 else 'small' if n > 5 else 'tiny'", "small"),
    ],
)
def test_it_combines_with_and_or_not_and_if_else_like_python(expression, expected):
    assert run(expression) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "false and undefined",
        "true or undefined",
        "n < 0 and undefined.key",
        "1 if true else undefined",
        "undefined if false else 1",
        "1 > 2 > undefined",
        "null and 1 / 0",
    ],
)
def test_it_evaluates_lazily_and_never_reaches_skipped_operands(expression):
    run(expression)  # raises if the skipped operand were evaluated


def test_it_reports_an_unknown_name_once_evaluation_reaches_it():
    assert error_of("true and undefined") == "unknown variable 'undefined'"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("len(s)", 5),
        ("len(user.tags)", 2),
        ("len(user)", 3),
        ("lower(s)", "hello"),
        ("upper(s)", "HELLO"),
        ("strip('  padded \\n')", "padded"),
        ("contains(s, 'ell')", True),
        ("contains(user.tags, 'root')", False),
        ("contains(user, 'name')", True),
        ("startswith(s, 'He')", True),
        ("endswith(s, 'x')", False),
        ("int('42')", 42),
        ("int(' -3 ')", -3),
        ("int(3.9)", 3),
        ("int(true)", 1),
        ("float('2.5')", 2.5),
        ("float(2)", 2.0),
        ("str(12) + '!'", "12!"),
        ("str(null)", "None"),
        ("bool(0)", False),
        ("bool('x')", True),
        ("abs(-3)", 3),
        ("abs(-2.5)", 2.5),
        ("min(3, 1, 2)", 1),
        ("min([4, 5])", 4),
        ("max(3, 1, 2)", 3),
        ("max(['a', 'c', 'b'])", "c"),
        ("round(2.567, 2)", 2.57),
        ("round(2.5)", 2),
        ("round(1234, -2)", 1200),
        ("sum([1, 2, 3.5])", 6.5),
        ("sum([])", 0),
        ("any([0, '', 1])", True),
        ("any([])", False),
        ("all([1, 'x'])", True),
        ("all([1, 0])", False),
        ("keys(user)", ["name", "tags", "profile"]),
        ("values(x)", [1]),
        ("len(keys({}))", 0),
    ],
)
def test_it_calls_each_whitelisted_function(expression, expected):
    assert run(expression) == expected


def test_it_reads_tuples_from_variables_as_lists():
    assert evaluate("t[0] + len(t) + sum(t[1:])", {"t": (5, 6)}) == 13


def test_it_accepts_leading_whitespace_and_multiple_lines():
    assert run("  (n +\n   1)") == 8


# --- names() ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("a + b", {"a", "b"}),
        ("user.profile.age > 18", {"user"}),
        ("len(items) > 0 and upper(s) == 'X'", {"items", "s"}),
        ("true and null or false", set()),
        ("x if c else y", {"x", "c", "y"}),
        ("d[k]['literal']", {"d", "k"}),
        ("1 + 2", set()),
        ("len", {"len"}),  # a function name that is not called is a variable like any other
    ],
)
def test_names_lists_the_top_level_variables_an_expression_reads(expression, expected):
    assert names(expression) == expected


def test_names_refuses_an_invalid_expression():
    with pytest.raises(ExpressionError):
        names("__import__('os')")


# --- Errors a user sees ----------------------------------------------------------------------------


def test_it_is_a_value_error():
    assert issubclass(ExpressionError, ValueError)


def test_validate_accepts_a_valid_expression_without_variables():
    assert validate("user.profile.age >= 18 and 'admin' in user.tags") is None


@pytest.mark.parametrize(
    ("expression", "location"),
    [
        ("1 + )", "column 5"),
        ("n +* 2", "column"),
        ("'unterminated", "column 1"),
        ("a + b.__class__", "column 5"),
        ("  x.__dict__", "column 3"),
        ("'éé' + __x", "column 8"),  # characters, not UTF-8 bytes
        ("(1 +\n x.__class__)", "line 2, column 2"),
        ("len(1, 2)", "column 1"),
        ("n + lower(s, 'x')", "column 5"),
    ],
)
def test_validate_names_the_column_of_the_problem(expression, location):
    with pytest.raises(ExpressionError) as caught:
        validate(expression)
    assert location in str(caught.value)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("nope + 1", "unknown variable 'nope'"),
        ("user.profile.phone", "key 'phone' not found in user.profile"),
        ("user['nickname']", "key 'nickname' not found in user"),
        ("user.tags[5]", "index 5 is out of range (length 2)"),
        ("user.tags['a']", "indexes must be integers, not a string"),
        ("n.value", "cannot read .value of an integer; only dicts have keys"),
        ("s[1:2:0]", "slice step cannot be zero"),
        ("'a' < 1", "cannot compare a string and an integer with <"),
        ("[1, 'a'] < [1, 2]", "cannot compare these lists with <"),
        ("'a' + 1", "cannot use + on a string and an integer"),
        ("[1] - [1]", "cannot use - on a list and a list"),
        ("-'a'", "unary minus and plus need a number, not a string"),
        ("1 in 'abc'", "cannot look for an integer in a string, only for a string"),
        ("1 in 2", "'in' needs a string, list or dict to look in, not an integer"),
        ("len(1)", "len() needs a string, list or dict, not an integer"),
        ("lower(1)", "lower() needs a string, not an integer"),
        ("int('abc')", "cannot convert 'abc' to int"),
        ("float('nan')", "cannot convert 'nan' to float"),
        ("sum(['a'])", "sum() needs a list of numbers"),
        ("min([])", "min() of an empty list"),
        ("max([1, 'a'])", "max() needs values that can be compared with each other"),
        ("round(1, 101)", "round() needs a number of digits between -100 and 100"),
        ("round(1.5, 1.5)", "round() needs an integer, not a number"),
        ("{[1]: 2}", "dict keys must be strings, numbers, booleans or null, not a list"),
        ("1 / 0", "division by zero"),
        ("1 // 0", "division by zero"),
        ("1 % 0", "division by zero"),
        ("1.5 / 0.0", "division by zero"),
        (f"1{'0' * 99} * 10", "number too large"),
        ("1e308 * 10", "number too large"),
        ("'ab' * 50001", "result too long (more than 100,000 items or characters)"),
    ],
)
def test_it_explains_evaluation_errors_plainly(expression, message):
    assert error_of(expression) == message


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("len()", "len() takes 1 argument, got 0"),
        ("min()", "min() takes at least 1 argument, got 0"),
        ("round(1, 2, 3)", "round() takes 1 or 2 arguments, got 3"),
        ("contains('a')", "contains() takes 2 arguments, got 1"),
        ("len(s=1)", "keyword arguments are not supported"),
        ("s.upper()", "method calls are not supported"),
        ("print(1)", "unknown function 'print'"),
        ("x ** 2", "the ** operator is not supported"),
        ("x is None", "'is' is not supported; use =="),
        ("(1, 2)", "tuples are not supported"),
        ("{1, 2}", "sets are not supported"),
        ("f'{s}'", "f-strings are not supported"),
        ("~1", "Invert is not supported"),
        ("b'bytes'", "only numbers, strings, true/false and null can be written as literals"),
        (f"1{'0' * 100}", "number too large"),
        ("", "expression is empty"),
    ],
)
def test_validate_explains_what_the_language_refuses(expression, message):
    with pytest.raises(ExpressionError) as caught:
        validate(expression)
    assert message in str(caught.value)


def test_it_refuses_an_expression_that_is_not_a_string():
    with pytest.raises(ExpressionError, match="expression must be a string"):
        validate(["1"])  # type: ignore[arg-type]


# --- Limits ----------------------------------------------------------------------------------------


def test_it_accepts_2000_characters_and_refuses_2001():
    assert len(run('"' + "a" * 1998 + '"')) == 1998
    with pytest.raises(ExpressionError, match="too long"):
        validate('"' + "a" * 1999 + '"')


def test_it_accepts_300_nodes_and_refuses_301():
    assert len(run("[" + "1," * 299 + "]")) == 299  # 299 numbers and the list
    with pytest.raises(ExpressionError, match="too complex"):
        validate("[" + "1," * 300 + "]")


@pytest.mark.parametrize(("opening", "closing"), [("(", ")"), ("[", "]"), ("-", "")])
def test_it_accepts_50_levels_of_nesting_and_refuses_51(opening, closing):
    validate(opening * 50 + "1" + closing * 50)
    with pytest.raises(ExpressionError, match="nested too deeply"):
        validate(opening * 51 + "1" + closing * 51)


# --- What it refuses to run ------------------------------------------------------------------------

# Refused by validate() at publish time, before any variable is known.
STATIC_ATTACKS = [
    "__import__('os').system('id')",
    "().__class__.__bases__[0].__subclasses__()",
    "x.__class__",
    "x.__dict__",
    "x.y.__class__.__mro__",
    "(1).__class__",
    "''.join",
    "'a'.upper()",
    "[].append(1)",
    "lambda: 1",
    "(lambda: 1)()",
    "[c for c in 'abc']",
    "{c: 1 for c in 'ab'}",
    "(c for c in 'ab')",
    "(y := 1)",
    "9**9**9",
    "2**1000",
    "'a' * 10**9",
    "[1] * 10**8",
    "open('/etc/passwd')",
    "getattr(x, 'y')",
    "globals()",
    "locals()",
    "vars()",
    "type(x)",
    "eval('1')",
    "exec('1')",
    "compile('1', '', 'eval')",
    "breakpoint()",
    "__builtins__",
    "__loader__",
    "len.__self__",
    "x.__ｃｌａｓｓ__",  # fullwidth letters: Python normalises identifiers to x.__class__
    "ｅｖａｌ('1')",  # and to eval
    "f'{x!r}'",
    "f'{1:>999999999}'",
    "'{:>999999999}'.format(1)",
    "*x",
    "{**x}",
    "[*x]",
    "x if true else __import__('os')",  # refused even in a branch that would not run
    "1 if 1 else (yield)",
    "await x",
    "import os",
    "x = 1",
    "1; 2",
    "b'\\x00'",
    "...",
    "1j",
    "1 " + "+ 1 " * 1250,  # 5,000 characters
    "(" * 100 + "1" + ")" * 100,
    "-" * 60 + "1",
    "not " * 60 + "x",
    "x.y" + ".z" * 60,
]
# Well-formed, but stopped by the limits while evaluating.
RUNTIME_ATTACKS = [
    "'a' * 1000000000",
    "[1] * 100000000",
    "1000000000 * [1]",
    "'ab' * 99999 * 99999",
    "99999999999999999999 * 99999999999999999999 * 99999999999999999999 * 99999999999999999999"
    " * 99999999999999999999 * 99999999999999999999",
    "'%999999999d' % 1",
    "str([1] * 100000)",  # str() may not amplify past the size cap either
    "[[1] * 1000] * 1000",  # nested items count: a million of them, though the outer list has 1,000
    "str([[1] * 99999] * 99999)",
    "[1] * 99999 + [2] in [[1] * 100000] * 100000",
    "round(1, -100000000)",  # int rounding builds 10 ** -digits
    "sum([1e308, 1e308])",
    "float('inf')",
    "x['__class__']",  # a plain key lookup, never an attribute: the key is simply missing
    "s.upper",
]


@pytest.mark.parametrize("expression", STATIC_ATTACKS)
def test_validate_refuses_unsafe_expressions_before_they_run(expression):
    with pytest.raises(ExpressionError) as caught:
        validate(expression)
    assert "Traceback" not in str(caught.value)


@pytest.mark.parametrize("expression", STATIC_ATTACKS + RUNTIME_ATTACKS)
def test_evaluate_refuses_unsafe_expressions(expression):
    message = error_of(expression)
    assert message
    assert "Traceback" not in message


@pytest.mark.parametrize(
    "template",
    [
        "__import__('os').system('touch {path}')",
        "open('{path}', 'w')",
        "[c for c in [open('{path}', 'w')]]",
        "false or __import__('pathlib').Path('{path}').touch()",
    ],
)
def test_an_attack_never_executes_anything(template, tmp_path):
    canary = tmp_path / "pwned"
    with pytest.raises(ExpressionError):
        evaluate(template.format(path=canary), {"x": 1})
    assert not canary.exists()


def test_evaluating_never_calls_python_eval_or_exec(monkeypatch):
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval or exec was called")

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    # Text that no other test uses, so it is parsed here rather than served from the parse cache.
    expression = "round(sum([items[0].price, items[1].qty]) if false else 17.25 / 3, 1) > 5 and upper(s) != 'nEvAl'"
    assert run(expression) is True
    assert names(expression) == {"items", "s"}
    validate(expression)
