"""book/_ext/source_links.py: the book's code literals link to the library's source.

Fast checks of how a literal is resolved to a module and line, and that every `finefcace.…`
literal the chapters show gets a link; the build test (tests/test_book.py,
``test_the_rendered_book_links_code_to_its_source``) checks the rendered pages."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import source_links  # noqa: E402

from finefcace import attention, model  # noqa: E402
from finefcace.training import config  # noqa: E402


def test_the_extension_is_enabled():
    extensions = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["local_extensions"]
    assert extensions.get("source_links") == "book/_ext"


def test_a_function_links_to_its_definition_line():
    line = inspect.getsourcelines(attention.class_activation_maps)[1]
    assert source_links.resolve("finefcace.attention.class_activation_maps") == ("finefcace.attention", line)
    # a call with its arguments, as chapters write them, names the same function
    assert source_links.resolve("finefcace.attention.class_activation_maps(model, output)") == ("finefcace.attention", line)


def test_class_aliases_methods_and_attributes():
    assert source_links.resolve("FineFACE.class_weights") == \
        ("finefcace.model", inspect.getsourcelines(model.FineFACE.class_weights)[1])
    module, line = source_links.resolve("TrainConfig.regions")
    assert module == "finefcace.training.config"
    assert re.match(r"\s*regions\s*:", inspect.getsource(config).splitlines()[line - 1])
    module, line = source_links.resolve("finefcace.presets.PRESETS")
    assert module == "finefcace.presets" and "PRESETS" in inspect.getsource(sys.modules[module]).splitlines()[line - 1]
    assert source_links.resolve("finefcace.metrics") == ("finefcace.metrics", 1)


@pytest.mark.parametrize("text", ["torch.nn.Conv2d", "finefcace.no_such_thing", "grid_sample", "a + b", "configs/quick.yaml"])
def test_other_literals_get_no_link(text):
    assert source_links.resolve(text) is None


def test_every_library_name_the_chapters_mention_gets_a_link():
    from tests.test_book import chapter_sources, inline_literals

    missing = []
    for path in chapter_sources():
        for literal in inline_literals(path.read_text()):
            name = re.sub(r"\(.*", "", literal, flags=re.S).strip()
            if re.fullmatch(r"finefcace(\.\w+)+", name) and source_links.resolve(literal) is None:
                missing.append(f"{path.name}: {literal}")
    assert not missing, "library names without a source link:\n" + "\n".join(missing)


def test_every_module_has_a_source_page():
    modules = source_links.library_modules()
    assert "finefcace.mutual_learning" in modules and "finefcace.course.verdict" in modules
    assert source_links.page_name("finefcace.course.verdict") == "_modules/finefcace/course/verdict"
