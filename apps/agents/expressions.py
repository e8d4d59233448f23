"""A small, safe expression language for workflow `condition` nodes and the agent `calculator` tool.

Expressions are written by platform users and are untrusted, so nothing here hands them to Python:
the text is parsed with `ast.parse(..., mode="eval")`, which only builds a tree, the tree is checked
against a whitelist, and then it is interpreted node by node. Member access `a.b` is a dict key lookup,
never `getattr`; only the functions in `_FUNCTIONS` can be called, by bare name; every operation checks
its operand types itself and caps the size of what it builds.
"""

from __future__ import annotations

import ast
import io
import math
import operator
import tokenize
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, NamedTuple

__all__ = ["ExpressionError", "evaluate", "names", "validate"]

MAX_LENGTH = 2_000
MAX_NODES = 300
MAX_DEPTH = 50
MAX_SIZE = 100_000  # items in a list, or characters in a string, that an expression may build
MAX_INT = 10**100  # exclusive bound on the magnitude of integers

_ALIASES: dict[str, Any] = {"true": True, "false": False, "null": None}
_NUMBER = (int, float)  # bool counts as a number, as in Python
_SEQUENCES = (str, list, tuple)  # tuples only ever arrive in `variables`; they behave as lists
_KEY_TYPES = (str, int, float, bool, type(None))

_ALLOWED_NODES: tuple[type[ast.AST], ...] = (
    ast.Expression, ast.Constant, ast.Name, ast.Attribute, ast.Subscript, ast.Slice, ast.Compare,
    ast.BoolOp, ast.UnaryOp, ast.BinOp, ast.IfExp, ast.List, ast.Dict, ast.Call, ast.Load,
    ast.And, ast.Or, ast.Not, ast.USub, ast.UAdd, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod,
    ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn,
)  # fmt: skip
# Friendlier words for what people commonly try; any other node is refused by its class name.
_REFUSED_NODES: dict[type[ast.AST], str] = {
    ast.Pow: "the ** operator is not supported", ast.Lambda: "lambda is not supported",
    ast.ListComp: "comprehensions are not supported", ast.SetComp: "comprehensions are not supported",
    ast.DictComp: "comprehensions are not supported", ast.GeneratorExp: "generator expressions are not supported",
    ast.NamedExpr: "the := operator is not supported", ast.Starred: "* unpacking is not supported",
    ast.JoinedStr: "f-strings are not supported; use str() and +", ast.Set: "sets are not supported; use a list",
    ast.Tuple: "tuples are not supported; use a list [...]", ast.Is: "'is' is not supported; use ==",
    ast.IsNot: "'is not' is not supported; use !=",
}  # fmt: skip
_ARITHMETIC: dict[type[ast.AST], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", operator.add), ast.Sub: ("-", operator.sub), ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv), ast.FloorDiv: ("//", operator.floordiv), ast.Mod: ("%", operator.mod),
}  # fmt: skip
_ORDERINGS: dict[type[ast.AST], tuple[str, Callable[[Any, Any], bool]]] = {
    ast.Lt: ("<", operator.lt), ast.LtE: ("<=", operator.le), ast.Gt: (">", operator.gt), ast.GtE: (">=", operator.ge),
}  # fmt: skip
_TYPE_NAMES: dict[type, str] = {
    bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", tuple: "a list",
    dict: "a dict", type(None): "null",
}  # fmt: skip
_PYTHON_ERRORS: dict[type[Exception], str] = {
    ZeroDivisionError: "division by zero", OverflowError: "number too large",
    RecursionError: "a value is nested too deeply", MemoryError: "result too large",
}  # fmt: skip


class ExpressionError(ValueError):
    """Bad expression or evaluation failure; str() is a clear message for the user.

    The message names the problem and, for anything found while parsing, the column.
    """


# --- Public API ------------------------------------------------------------------------------------


def validate(expression: str) -> None:
    """Check syntax, limits and the whitelist without evaluating (used when a workflow is published)."""
    _tree(expression)


def evaluate(expression: str, variables: Mapping[str, Any]) -> Any:
    """Evaluate against `variables`; `and`, `or`, `x if c else y` and comparison chains are lazy, as in Python."""
    tree = _tree(expression)
    try:
        return _eval(tree.body, variables)
    except ExpressionError:
        raise
    except (ArithmeticError, RecursionError, MemoryError, TypeError, ValueError, LookupError) as exc:
        # The operations check their operands; this net keeps any Python internal from reaching a user.
        raise ExpressionError(_PYTHON_ERRORS.get(type(exc), "invalid operation on these values")) from None


def names(expression: str) -> set[str]:
    """Top-level variable names the expression reads, including in branches that may not run."""
    tree = _tree(expression)
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    return {
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and node.id not in _ALIASES and id(node) not in called
    }


# --- Parsing and the whitelist ---------------------------------------------------------------------


def _tree(expression: object) -> ast.Expression:
    if not isinstance(expression, str):  # checked before the cache, which would choke on unhashable input
        raise ExpressionError("expression must be a string")
    return _parse(expression)


@lru_cache(maxsize=512)  # a condition is evaluated on every run; parse and check each text once per process
def _parse(text: str) -> ast.Expression:
    if not text.strip():
        raise ExpressionError("expression is empty")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression is too long ({len(text):,} characters; the limit is {MAX_LENGTH:,})")
    # Python's eval() strips blanks before the first line; ast.parse calls them an "unexpected indent".
    body = text.lstrip(" \t\f")
    shift = len(text) - len(body)
    try:
        tree = ast.parse(body, mode="eval")
    except SyntaxError as exc:
        where = _location(exc.lineno or 1, (exc.offset or 1) - 1, shift)
        raise ExpressionError(f"invalid syntax at {where}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError):  # null bytes, or nesting the parser gives up on
        raise ExpressionError("expression cannot be parsed") from None
    _check_size(tree, body)
    for node in ast.walk(tree):  # parents before children, so the outermost problem is reported
        problem = _node_problem(node)
        if problem:
            raise ExpressionError(f"{problem} (at {_node_location(node, body, shift)})")
    return tree


def _check_size(tree: ast.Expression, body: str) -> None:
    count = sum(1 for node in ast.walk(tree) if isinstance(node, ast.expr))
    if count > MAX_NODES:
        raise ExpressionError(f"expression is too complex ({count} parts; the limit is {MAX_NODES})")
    # Redundant parentheses leave no node behind, so brackets are counted in the source as well.
    if max(_tree_depth(tree), _bracket_depth(body)) > MAX_DEPTH:
        raise ExpressionError(f"expression is nested too deeply (the limit is {MAX_DEPTH} levels)")


def _tree_depth(tree: ast.Expression) -> int:
    """How many operations enclose the innermost value: 0 for `1`, 1 for `[1]` or `-1`."""
    deepest, stack = 0, [(tree.body, 0)]
    while stack:  # a loop, not recursion: the tree may be deeper than Python's recursion limit
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr))
    return deepest


def _bracket_depth(body: str) -> int:
    depth = deepest = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(body).readline):
            if token.type == tokenize.OP and token.string in ("(", "[", "{", ")", "]", "}"):
                depth += 1 if token.string in "([{" else -1
                deepest = max(deepest, depth)
    except (tokenize.TokenError, SyntaxError):  # the pure-Python tokenizer is stricter in odd corners
        raise ExpressionError("expression cannot be parsed") from None
    return deepest


def _node_problem(node: ast.AST) -> str | None:
    """What is wrong with one node on its own, or None; the caller's walk reaches the children."""
    if type(node) in _REFUSED_NODES:
        return _REFUSED_NODES[type(node)]
    if not isinstance(node, _ALLOWED_NODES):
        return f"{type(node).__name__} is not supported"
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, _KEY_TYPES):  # bytes, complex numbers, `...`
            return "only numbers, strings, true/false and null can be written as literals"
        return None if _is_small_number(node.value) else "number too large"
    if isinstance(node, ast.Name) and node.id.startswith("__"):
        return f"name {node.id!r} is not allowed (names may not start with '__')"
    if isinstance(node, ast.Attribute):
        if node.attr.startswith("__"):
            return f"member {node.attr!r} is not allowed (names may not start with '__')"
        if isinstance(node.value, ast.Constant | ast.List):
            return f"'.{node.attr}' reads a key of a dict; strings and lists have no members"
    if isinstance(node, ast.Dict) and None in node.keys:
        return "** unpacking is not supported"
    return _call_problem(node) if isinstance(node, ast.Call) else None


def _call_problem(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Attribute):
        hint = f"; write {node.func.attr}(x) instead of x.{node.func.attr}()" if node.func.attr in _FUNCTIONS else ""
        return f"method calls are not supported{hint}"
    if not isinstance(node.func, ast.Name):
        return "only functions called by name are supported"
    function = _FUNCTIONS.get(node.func.id)
    if function is None:
        return f"unknown function {node.func.id!r}; available: {', '.join(sorted(_FUNCTIONS))}"
    if node.keywords:
        return "keyword arguments are not supported"
    return function.arity_problem(node.func.id, len(node.args))


def _location(lineno: int, column: int, shift: int) -> str:
    """`column N` (1-based, in characters), or `line L, column N` in a multi-line expression."""
    return f"column {column + shift + 1}" if lineno == 1 else f"line {lineno}, column {column + 1}"


def _node_location(node: ast.AST, body: str, shift: int) -> str:
    lineno, offset = getattr(node, "lineno", 1), getattr(node, "col_offset", 0)
    lines = body.encode().splitlines()  # bytes split lines as Python's tokenizer does; col_offset counts bytes
    column = len(lines[lineno - 1][:offset].decode(errors="replace")) if lineno <= len(lines) else offset
    return _location(lineno, column, shift)


# --- Evaluation ------------------------------------------------------------------------------------


def _eval(node: ast.expr, variables: Mapping[str, Any]) -> Any:
    return _EVALUATORS[type(node)](node, variables)


def _eval_name(node: ast.Name, variables: Mapping[str, Any]) -> Any:
    if node.id in _ALIASES:  # the aliases win over variables, so `x == null` always means what it says
        return _ALIASES[node.id]
    if node.id not in variables:
        raise ExpressionError(f"unknown variable {node.id!r}")
    return variables[node.id]


def _eval_attribute(node: ast.Attribute, variables: Mapping[str, Any]) -> Any:
    container = _eval(node.value, variables)
    if not isinstance(container, dict):
        raise ExpressionError(f"cannot read .{node.attr} of {_type_name(container)}; only dicts have keys")
    return _dict_lookup(container, node.attr, node.value)


def _eval_subscript(node: ast.Subscript, variables: Mapping[str, Any]) -> Any:
    container = _eval(node.value, variables)
    if isinstance(node.slice, ast.Slice):
        return _slice(container, node.slice, variables)
    key = _eval(node.slice, variables)
    if isinstance(container, dict):
        return _dict_lookup(container, key, node.value)
    if not isinstance(container, _SEQUENCES):
        raise ExpressionError(f"cannot index {_type_name(container)}")
    if not _is_index(key):
        raise ExpressionError(f"indexes must be integers, not {_type_name(key)}")
    if not -len(container) <= key < len(container):
        raise ExpressionError(f"index {key} is out of range (length {len(container)})")
    return container[key]


def _dict_lookup(container: dict[Any, Any], key: Any, owner: ast.expr) -> Any:
    # Missing is an error, not null: a typo in a condition must fail loudly rather than quietly take
    # the false branch. Authors test for optional keys with `"key" in x`.
    if not isinstance(key, _KEY_TYPES) or key not in container:
        raise ExpressionError(f"key {_clip(repr(key))} not found in {_clip(ast.unparse(owner))}")
    return container[key]


def _slice(container: Any, node: ast.Slice, variables: Mapping[str, Any]) -> Any:
    if not isinstance(container, _SEQUENCES):
        raise ExpressionError(f"cannot slice {_type_name(container)}")
    bounds = [None if part is None else _eval(part, variables) for part in (node.lower, node.upper, node.step)]
    if not all(bound is None or _is_index(bound) for bound in bounds):
        raise ExpressionError("slice bounds must be integers")
    if bounds[2] == 0:
        raise ExpressionError("slice step cannot be zero")
    return container[bounds[0] : bounds[1] : bounds[2]]  # never longer than the container itself


def _eval_compare(node: ast.Compare, variables: Mapping[str, Any]) -> bool:
    left = _eval(node.left, variables)
    for operator_node, comparator in zip(node.ops, node.comparators, strict=True):
        right = _eval(comparator, variables)  # reached only while the chain still holds, as in Python
        if not _compare(operator_node, left, right):
            return False
        left = right
    return True


def _compare(operator_node: ast.cmpop, left: Any, right: Any) -> bool:
    if isinstance(operator_node, ast.Eq | ast.NotEq):
        return (left == right) is isinstance(operator_node, ast.Eq)
    if isinstance(operator_node, ast.In | ast.NotIn):
        return _contains(right, left) is isinstance(operator_node, ast.In)
    symbol, compare = _ORDERINGS[type(operator_node)]
    if not (_both(left, right, _NUMBER) or _both(left, right, str) or _both(left, right, (list, tuple))):
        raise ExpressionError(f"cannot compare {_type_name(left)} and {_type_name(right)} with {symbol}")
    try:
        return compare(left, right)
    except TypeError:  # lists whose items cannot be compared
        raise ExpressionError(f"cannot compare these lists with {symbol}") from None


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        if not isinstance(item, str):
            raise ExpressionError(f"cannot look for {_type_name(item)} in a string, only for a string")
        return item in container
    if isinstance(container, list | tuple):
        return item in container
    if isinstance(container, dict):
        return isinstance(item, _KEY_TYPES) and item in container  # a list can never be a key
    raise ExpressionError(f"'in' needs a string, list or dict to look in, not {_type_name(container)}")


def _eval_boolop(node: ast.BoolOp, variables: Mapping[str, Any]) -> Any:
    stop_when = isinstance(node.op, ast.Or)  # `or` stops at the first truthy value, `and` at the first falsy
    for operand in node.values[:-1]:
        value = _eval(operand, variables)
        if bool(value) is stop_when:
            return value
    return _eval(node.values[-1], variables)


def _eval_unaryop(node: ast.UnaryOp, variables: Mapping[str, Any]) -> Any:
    operand = _eval(node.operand, variables)
    if isinstance(node.op, ast.Not):
        return not operand
    if not isinstance(operand, _NUMBER):
        raise ExpressionError(f"unary minus and plus need a number, not {_type_name(operand)}")
    return _checked_number(-operand if isinstance(node.op, ast.USub) else +operand)


def _eval_binop(node: ast.BinOp, variables: Mapping[str, Any]) -> Any:
    left, right = _eval(node.left, variables), _eval(node.right, variables)
    symbol, apply = _ARITHMETIC[type(node.op)]
    if _both(left, right, _NUMBER):
        if symbol in ("/", "//", "%") and right == 0:
            raise ExpressionError("division by zero")
        return _checked_number(apply(left, right))
    if symbol == "+" and type(left) is type(right) and isinstance(left, _SEQUENCES):
        _check_length(len(left) + len(right))
        return left + right
    sequence, count = (left, right) if isinstance(left, _SEQUENCES) else (right, left)
    if symbol == "*" and isinstance(sequence, _SEQUENCES) and isinstance(count, int):
        # Checked before building, with nested items counted: `[[1] * 99999] * 99999` is small in memory
        # (shared references) but a few billion items to str() or compare.
        _check_length(_weight(sequence) * max(count, 0))
        return left * right
    # Refusing `%` on strings matters: printf-style "%999999999d" % 1 would build a gigabyte.
    raise ExpressionError(f"cannot use {symbol} on {_type_name(left)} and {_type_name(right)}")


def _eval_dict(node: ast.Dict, variables: Mapping[str, Any]) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    for key_node, value_node in zip(node.keys, node.values, strict=True):
        key = _eval(key_node, variables)  # never None here: `{**x}` was refused by the whitelist
        if not isinstance(key, _KEY_TYPES):
            raise ExpressionError(f"dict keys must be strings, numbers, booleans or null, not {_type_name(key)}")
        result[key] = _eval(value_node, variables)
    return result


def _eval_call(node: ast.Call, variables: Mapping[str, Any]) -> Any:
    name = node.func.id  # the whitelist let through only bare names of _FUNCTIONS
    return _FUNCTIONS[name].call(name, [_eval(argument, variables) for argument in node.args])


_EVALUATORS: dict[type[ast.AST], Callable[[Any, Mapping[str, Any]], Any]] = {
    ast.Constant: lambda node, variables: node.value,
    ast.Name: _eval_name, ast.Attribute: _eval_attribute, ast.Subscript: _eval_subscript,
    ast.Compare: _eval_compare, ast.BoolOp: _eval_boolop, ast.UnaryOp: _eval_unaryop, ast.BinOp: _eval_binop,
    ast.IfExp: lambda node, variables: _eval(node.body if _eval(node.test, variables) else node.orelse, variables),
    ast.List: lambda node, variables: [_eval(item, variables) for item in node.elts],
    ast.Dict: _eval_dict, ast.Call: _eval_call,
}  # fmt: skip


# --- Values ----------------------------------------------------------------------------------------


def _both(left: Any, right: Any, kinds: type | tuple[type, ...]) -> bool:
    return isinstance(left, kinds) and isinstance(right, kinds)


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_small_number(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return not isinstance(value, int) or abs(value) < MAX_INT


def _checked_number(value: Any) -> Any:
    if not _is_small_number(value):
        raise ExpressionError("number too large")
    return value


def _check_length(length: int) -> None:
    if length > MAX_SIZE:
        raise ExpressionError(f"result too long (more than {MAX_SIZE:,} items or characters)")


def _weight(value: Any) -> int:
    """Characters and items in a value, nested ones included; counting stops just past MAX_SIZE."""
    total, stack = 0, [value]
    while stack and total <= MAX_SIZE:
        item = stack.pop()
        if isinstance(item, str | list | tuple | dict):
            total += len(item)
            if total <= MAX_SIZE and not isinstance(item, str):  # queue no more than the budget
                stack.extend(item.values() if isinstance(item, dict) else item)
    return total


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _clip(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


# --- Functions -------------------------------------------------------------------------------------

_Kind = tuple[type | tuple[type, ...], str]  # what an argument must be, and how to say so
_ANY: _Kind = (object, "a value")
_TEXT: _Kind = (str, "a string")
_LIST: _Kind = ((list, tuple), "a list")
_NUMERIC: _Kind = (_NUMBER, "a number")
_CONVERTIBLE: _Kind = ((int, float, str), "a number or a string")
_DICT: _Kind = (dict, "a dict")


class _Function(NamedTuple):
    implementation: Callable[..., Any]
    parameters: tuple[_Kind, ...]
    optional: int = 0  # how many trailing parameters may be left out
    variadic: bool = False  # the last parameter may repeat

    def arity_problem(self, name: str, count: int) -> str | None:
        least, most = len(self.parameters) - self.optional, len(self.parameters)
        if count >= least and (self.variadic or count <= most):
            return None
        expected = f"at least {least}" if self.variadic else f"{least} or {most}" if self.optional else str(least)
        plural = "" if least == 1 and (most == 1 or self.variadic) else "s"
        return f"{name}() takes {expected} argument{plural}, got {count}"

    def call(self, name: str, arguments: list[Any]) -> Any:
        for index, argument in enumerate(arguments):
            kinds, description = self.parameters[min(index, len(self.parameters) - 1)]
            if not isinstance(argument, kinds):
                raise ExpressionError(f"{name}() needs {description}, not {_type_name(argument)}")
        return self.implementation(*arguments)


def _to_number(convert: type[int] | type[float], value: Any) -> int | float:
    try:
        number = convert(value)
    except (ValueError, OverflowError):  # "abc", or past Python's limit on digits in an int string
        number = math.nan
    if not _is_small_number(number):  # also refuses float("nan") and float("inf")
        raise ExpressionError(f"cannot convert {_clip(repr(value))} to {convert.__name__}")
    return number


def _to_str(value: Any) -> str:
    _check_length(_weight(value))  # before str(), which would write out every shared reference in full
    text = str(value)
    _check_length(len(text))
    return text


def _extreme(pick: Callable[..., Any], *values: Any) -> Any:
    if len(values) == 1:  # min([1, 2]) as well as min(1, 2)
        if not isinstance(values[0], list | tuple):
            raise ExpressionError(f"{pick.__name__}() needs a list or several values")
        values = tuple(values[0])
    if not values:
        raise ExpressionError(f"{pick.__name__}() of an empty list")
    try:
        return pick(values)
    except TypeError:
        raise ExpressionError(f"{pick.__name__}() needs values that can be compared with each other") from None


def _round(value: int | float, digits: int | None = None) -> int | float:
    # round(1, -10**8) computes 10**(10**8) internally and takes minutes.
    if digits is not None and abs(digits) > 100:
        raise ExpressionError("round() needs a number of digits between -100 and 100")
    return _checked_number(round(value, digits))


def _sum(values: list[Any] | tuple[Any, ...]) -> int | float:
    if not all(isinstance(value, _NUMBER) for value in values):
        raise ExpressionError("sum() needs a list of numbers")
    return _checked_number(sum(values))


_FUNCTIONS: dict[str, _Function] = {
    "len": _Function(len, (((str, list, tuple, dict), "a string, list or dict"),)),
    "lower": _Function(str.lower, (_TEXT,)),
    "upper": _Function(str.upper, (_TEXT,)),
    "strip": _Function(str.strip, (_TEXT,)),
    "contains": _Function(_contains, (_ANY, _ANY)),
    "startswith": _Function(str.startswith, (_TEXT, _TEXT)),
    "endswith": _Function(str.endswith, (_TEXT, _TEXT)),
    "int": _Function(lambda value: _to_number(int, value), (_CONVERTIBLE,)),
    "float": _Function(lambda value: _to_number(float, value), (_CONVERTIBLE,)),
    "str": _Function(_to_str, (_ANY,)),
    "bool": _Function(bool, (_ANY,)),
    "abs": _Function(lambda value: _checked_number(abs(value)), (_NUMERIC,)),
    "min": _Function(lambda *values: _extreme(min, *values), (_ANY,), variadic=True),
    "max": _Function(lambda *values: _extreme(max, *values), (_ANY,), variadic=True),
    "round": _Function(_round, (_NUMERIC, (int, "an integer")), optional=1),
    "sum": _Function(_sum, (_LIST,)),
    "any": _Function(any, (_LIST,)),
    "all": _Function(all, (_LIST,)),
    "keys": _Function(list, (_DICT,)),
    "values": _Function(lambda value: list(value.values()), (_DICT,)),
}
