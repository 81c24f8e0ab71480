"""A value checked against its type annotation, and the message when it does not fit.

The one implementation behind both input gates: the training configuration
(:class:`finefcace.training.config.TrainConfig`, introduced in ``notebooks/04_training.ipynb``)
and the notebooks' parameters (:func:`finefcace.course.parameters.check_parameters`,
introduced in ``notebooks/01_dataset_preparation.ipynb``). Both take their values from YAML
files (profiles, configs) or ``key=value`` options, so one wording serves both: the expected
type in words, what came instead, and how to write it in the file. No paper section: this is
the course's own machinery.

The small set of types the two use: ``bool``, ``int``, ``float`` (an int is accepted and
converted, and so is a number in exponent form that YAML read as text: PyYAML follows YAML
1.1, where ``1e-3`` without a dot is a string, not ``0.001``), ``str`` (a ``pathlib.Path``
too), ``X | None``, ``list[X]`` (a tuple too), ``dict[K, V]``, ``Literal[...]``, ``Any``; a
string annotation is accepted unchecked.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

__all__ = ["check_value", "type_example", "type_message", "type_name"]

#: A number in exponent form without a dot (``1e-3``, ``5E4``): YAML 1.1 reads it as text.
_EXPONENT_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def check_value(value: Any, annotation: Any) -> tuple[bool, Any]:
    """``(fits, converted value)``: does ``value`` fit ``annotation``; ints (and exponent-form
    text such as ``"1e-3"``) become floats where a float is expected, tuples lists, paths strings."""
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if annotation is Any or isinstance(annotation, str):
        return True, value
    if annotation is None or annotation is type(None):
        return value is None, value
    if origin in (typing.Union, types.UnionType):
        for option in arguments:
            fits, converted = check_value(value, option)
            if fits:
                return True, converted
        return False, value
    if origin is Literal:
        return value in arguments, value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False, value
        converted = []
        for element in value:
            fits, element = check_value(element, arguments[0] if arguments else Any)
            if not fits:
                return False, value
            converted.append(element)
        return True, converted
    if origin is dict:
        if not isinstance(value, dict):
            return False, value
        key_type, value_type = arguments or (Any, Any)
        fits = all(check_value(k, key_type)[0] and check_value(v, value_type)[0] for k, v in value.items())
        return fits, dict(value)
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if annotation is float:
        if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
            return True, float(value)
        fits = isinstance(value, (int, float)) and not isinstance(value, bool)
        return fits, float(value) if fits else value
    if annotation is str:
        return isinstance(value, (str, Path)), str(value) if isinstance(value, Path) else value
    if isinstance(annotation, type):
        return isinstance(value, annotation), value
    return True, value


def type_name(annotation: Any) -> str:
    """``annotation`` in words: ``int or null``, ``a list of int``, ``one of 'a', 'b'``."""
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if annotation is None or annotation is type(None):
        return "null"
    if annotation is Any:
        return "any value"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in arguments)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in arguments)
    if origin in (list, tuple):
        return f"a list of {type_name(arguments[0])}" if arguments else "a list"
    if origin is dict:
        return "a mapping"
    return getattr(annotation, "__name__", str(annotation))


def type_example(annotation: Any) -> str:
    """How a value of ``annotation`` is written in YAML: ``3``, ``true``, ``[3, ...]``."""
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in arguments if a is not type(None)]
        return type_example(options[0]) if options else "null"
    if origin is Literal:
        return repr(arguments[0])
    if origin in (list, tuple):
        return f"[{type_example(arguments[0]) if arguments else '...'}, ...]"
    if origin is dict:
        return "{key: value}"
    return {bool: "true", int: "3", float: "0.5", str: "text"}.get(annotation, "...")


def type_message(label: str, key: str, value: Any, annotation: Any, where: str) -> str:
    """The message for a value that does not fit: ``{label} must be {type}, got {value}``, a hint
    when a number or boolean came quoted, and an example line for the file ``where`` names."""
    expected = type_name(annotation)
    hint = ""
    if isinstance(value, str) and "str" not in expected and "'" not in expected:
        hint = "; write numbers, booleans (true/false) and null without quotes"
    return (f"{label} must be {expected}, got {type(value).__name__} {value!r}{hint} "
            f"(e.g. `{key}: {type_example(annotation)}` in {where})")
