"""scripts/mutation_check.py: its planted faults still apply to today's source (a fault whose text
was edited away would silently check nothing), and it refuses one that does not."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("mutation_check", ROOT / "scripts" / "mutation_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


check = _script()


@pytest.mark.parametrize("fault", check.FAULTS, ids=[f.name for f in check.FAULTS])
def test_every_fault_applies_once_to_todays_source_and_names_existing_tests(fault):
    assert (ROOT / fault.path).read_text().count(fault.old) == 1, f"{fault.name}: text not found once in {fault.path}"
    assert fault.new != fault.old
    for test in fault.tests:
        assert (ROOT / test.split("::")[0]).is_file(), f"{fault.name}: no test file {test}"


def test_the_faults_cover_the_method_the_trainer_the_metrics_and_the_data_code():
    paths = {f.path for f in check.FAULTS}
    assert len(check.FAULTS) >= 8 and len({f.name for f in check.FAULTS}) == len(check.FAULTS)
    for layer in ("finefcace/attention.py", "finefcace/mutual_learning.py", "finefcace/training/trainer.py",
                  "finefcace/metrics.py", "finefcace/sources/"):
        assert any(p.startswith(layer) for p in paths), layer


def test_a_fault_whose_text_is_gone_is_refused_naming_it(tmp_path):
    (tmp_path / "finefcace").mkdir()
    (tmp_path / "finefcace" / "metrics.py").write_text("ratio = high / max(low, 1e-9)\n")
    fault = next(f for f in check.FAULTS if f.name == "max-min-inverted")
    with pytest.raises(SystemExit, match="max-min-inverted.*occurs 0 times in finefcace/metrics.py"):
        check.apply(fault, tmp_path)
    (tmp_path / "finefcace" / "metrics.py").write_text("ratio = high / low\n")
    check.apply(fault, tmp_path)
    assert (tmp_path / "finefcace" / "metrics.py").read_text() == "ratio = low / high\n"
