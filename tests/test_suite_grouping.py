"""conftest.py's grouping for pytest-xdist: what needs the course build runs first, in its order,
on one worker (the build, then the browser check and nbval's notebooks that load its runs)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _root_conftest():
    spec = importlib.util.spec_from_file_location("root_conftest_under_test", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Item:
    def __init__(self, path: str, fixtures=()):
        self.path = ROOT / path
        self.fixturenames = list(fixtures)
        self.markers = []

    def add_marker(self, marker):
        self.markers.append(marker)

    def __repr__(self):
        return f"Item({self.path.relative_to(ROOT)})"


def test_the_build_chain_comes_first_in_one_group_and_keeps_its_order():
    conftest = _root_conftest()
    unit = Item("tests/test_metrics.py")
    static = Item("tests/test_book.py")  # a static check of the book: no build needed
    build = Item("tests/test_book.py", fixtures=["built_book"])
    browser = Item("tests/test_browser.py")
    notebook_1 = Item("notebooks/01_dataset_preparation.ipynb")
    notebook_7 = Item("notebooks/07_mitigation_methods.ipynb")
    items = [unit, static, build, browser, notebook_1, notebook_7]
    conftest.group_the_course_build(items)
    assert items == [build, browser, notebook_1, notebook_7, unit, static]
    for item in (build, browser, notebook_1, notebook_7):
        assert [m.name for m in item.markers] == ["xdist_group"]
        assert item.markers[0].args == (conftest.COURSE_BUILD_GROUP,)
    assert not unit.markers and not static.markers
