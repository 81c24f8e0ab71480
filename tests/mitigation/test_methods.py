"""Tests of finefcace/mitigation/__init__.py: the methods the engine knows and their options."""

from __future__ import annotations

import pytest

from finefcace.mitigation import METHODS, MITIGATIONS, check_options, uses_protected_labels


def test_only_the_mitigation_methods_use_protected_labels():
    assert METHODS[:2] == ("finefcace", "baseline")
    assert set(METHODS[2:]) == {"group_balanced", "domain_independent", "adversarial", "group_dro"}
    assert not uses_protected_labels("finefcace") and not uses_protected_labels("baseline")
    assert all(uses_protected_labels(m) for m in MITIGATIONS)


def test_options_are_checked_with_the_fix():
    assert check_options("group_dro", None) == {"step_size": 0.01, "sampling": "balanced"}
    assert check_options("adversarial", {"adversary_weight": 2}) == {
        "adversary_weight": 2.0, "adversary_hidden": 256, "adversary_input": "features"}
    assert check_options("finefcace", {}) == {}
    with pytest.raises(ValueError, match="did you mean 'step_size'"):
        check_options("group_dro", {"stepsize": 0.1})
    with pytest.raises(ValueError, match="must be float.*'fast'"):
        check_options("group_dro", {"step_size": "fast"})
    with pytest.raises(ValueError, match="choose one of \\['logits', 'probabilities'\\]"):
        check_options("domain_independent", {"combine": "max"})
    with pytest.raises(ValueError, match=">= 0.0"):
        check_options("adversarial", {"adversary_weight": -1.0})
    with pytest.raises(ValueError, match="takes no method_options"):
        check_options("baseline", {"step_size": 0.1})
