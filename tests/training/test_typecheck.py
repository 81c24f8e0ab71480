"""Tests of finefcace/training/typecheck.py: one type check and one wording for config keys and
notebook parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest

from finefcace.training.typecheck import check_value, type_message, type_name


@pytest.mark.parametrize(("annotation", "value", "fits", "converted"), [
    (int, 3, True, 3),
    (int, True, False, True),
    (float, 2, True, 2.0),
    (float, "1e-3", True, 0.001),       # YAML 1.1 reads 1e-3 (no dot) as text
    (float | None, " 2E4", True, 20000.0),
    (float, "0.5", False, "0.5"),       # other quoted numbers stay refused: quotes were written on purpose
    (int, "1e3", False, "1e3"),
    (str, Path("a/b"), True, "a/b"),
    (list[int], (1, 2), True, [1, 2]),
    (list[int], [1, "2"], False, [1, "2"]),
    (int | None, None, True, None),
    (Literal["batch", "sample"], "image", False, "image"),
    (dict[str, int], {"a": "b"}, False, {"a": "b"}),
    (Any, object, True, object),
    ("SomeForwardReference", 5, True, 5),
])
def test_check_value_fits_and_converts(annotation, value, fits, converted):
    assert check_value(value, annotation) == (fits, converted)


def test_one_wording_for_both_gates():
    assert type_name(Literal["a", "b"] | None) == "one of 'a', 'b' or null"
    assert type_name(list[int] | None) == "a list of int or null"
    config = type_message("config key 'epochs'", "epochs", "3", int, "the config file")
    parameter = type_message("parameter 'epochs'", "epochs", "3", int, "the profile file")
    assert config == ("config key 'epochs' must be int, got str '3'; write numbers, booleans (true/false) and null "
                      "without quotes (e.g. `epochs: 3` in the config file)")
    assert parameter.replace("parameter", "config key").replace("profile", "config") == config
