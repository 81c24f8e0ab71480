"""make test's two sessions: the course build and what reads it first (``-m course_build``), then
every other test under pytest-xdist (``-m "not course_build"``). conftest.py marks the first
group; together the two selections are the whole suite, and a failure in either fails make test."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _root_conftest():
    spec = importlib.util.spec_from_file_location("root_conftest_under_test", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Item:
    """What the ordering reads of a collected item: its path and markers."""

    def __init__(self, path: str, *markers: str):
        self.path = ROOT / path
        self.markers = list(markers)

    def get_closest_marker(self, name):
        return name if name in self.markers else None

    def add_marker(self, marker):
        self.markers.append(marker.name)

    def __repr__(self):
        return f"Item({self.path.relative_to(ROOT)}, {self.markers})"


def test_what_needs_the_build_comes_first_marked_and_in_its_order():
    conftest = _root_conftest()
    unit = Item("tests/test_metrics.py")
    static = Item("tests/test_book.py")  # a check of the book's sources: no build needed
    build = Item("tests/test_book.py", "book", "slow")
    browser = Item("tests/test_browser.py", "book", "slow")
    chapter_1 = Item("notebooks/01_dataset_preparation.ipynb")
    chapter_7 = Item("notebooks/07_mitigation_methods.ipynb")
    items = [unit, chapter_1, static, build, chapter_7, browser]
    conftest.order_the_course_build_first(items)
    assert items == [chapter_1, build, chapter_7, browser, unit, static]
    for item in (chapter_1, build, chapter_7, browser):
        assert conftest.COURSE_BUILD in item.markers
    assert conftest.COURSE_BUILD not in unit.markers and conftest.COURSE_BUILD not in static.markers


def test_make_test_runs_both_sessions_and_fails_when_either_fails():
    recipe = re.search(r"^test: .*?\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    sessions = re.findall(r'-m pytest (.*?);', recipe)
    assert sessions == ["-m course_build", '-n auto -m "not course_build"'], recipe
    assert "exit $$(( build > rest ? build : rest ))" in recipe  # not `&&`: the second runs after a failure


@pytest.mark.parametrize("status", [(0, 0, 0), (1, 0, 1), (0, 1, 1), (2, 1, 2)])
def test_the_recipes_exit_status_is_the_worse_of_the_two(status):
    """The recipe's own exit expression, run by sh with each pair of session statuses."""
    import subprocess

    build, rest, expected = status
    recipe = (ROOT / "Makefile").read_text()
    expression = re.search(r"exit \$\$\(\(.*?\)\)", recipe).group(0).replace("$$", "$")
    assert subprocess.run(["sh", "-c", f"build={build}; rest={rest}; {expression}"]).returncode == expected
