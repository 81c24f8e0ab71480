"""The pages for those the course measures and those who teach it (fast: no book build):
book/labels.md, what the labels are and are not, where the TOC puts it and which pages link
to it, its licences and its exercises; book/teachers_guide.md, its place, its exercise lists
and its times (the build's own, never typed by hand). That the pages render is checked on the
built book by tests/test_book.py and tests/test_browser.py, which visit every TOC page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from finefcace.sources import celeba, fairface, lfwa, synthetic, utkface
from finefcace.training.model_card import LABELS_CHAPTER, LABELS_CHAPTER_SOURCE

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
LABELS = BOOK / "labels.md"
GUIDE = BOOK / "teachers_guide.md"


def toc_parts() -> dict[str, list[str]]:
    """caption -> the files of that part of _toc.yml, in order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return {part["caption"]: [chapter["file"] for chapter in part["chapters"]] for part in toc["parts"]}


def notebook_markdown(name: str) -> str:
    cells = json.loads((ROOT / "notebooks" / name).read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def test_the_labels_chapter_follows_the_method_and_the_guide_is_practice():
    parts = toc_parts()
    method = parts["The method"]
    assert method.index("book/labels") == method.index("book/decisions") + 1
    assert "book/teachers_guide" in parts["Practice"]


def test_the_model_cards_name_the_labels_chapter_by_its_title_and_source():
    assert LABELS_CHAPTER_SOURCE == LABELS.relative_to(ROOT).as_posix()
    assert LABELS.read_text().splitlines()[0] == f"# {LABELS_CHAPTER}"


def test_the_pages_that_use_the_labels_link_the_chapter():
    for page in ("real_photographs.md", "intro.md"):
        assert "{doc}`labels`" in (BOOK / page).read_text(), page
    for notebook in ("01_dataset_preparation.ipynb", "04_training.ipynb", "05_evaluation.ipynb"):
        assert "{doc}`../labels`" in notebook_markdown(notebook), notebook


def test_the_labels_chapter_covers_each_dataset_and_the_critique():
    text = LABELS.read_text()
    for key in ("karkkainen2021fairface", "zhang2017age", "liu2015deep", "huang2007labeled",
                "keyes2018misgendering", "hamidi2018gender", "scheuerman2019computers"):
        assert key in text, key
    for words in ("Perceived, not self-identified", "Binary", "Consent and licences", '"Others" in UTKFace',
                  "Why this course still uses these labels", "can and cannot support",
                  "draw one tone group's cues faint"):
        assert words in text, words


def test_the_labels_chapter_states_each_adapters_licence():
    text = LABELS.read_text()
    for module in (fairface, utkface, lfwa, celeba, synthetic):
        terms = re.split(r"[:;]| \(", module.LICENCE)[0]
        assert terms in text, (module.__name__, terms)
        assert f"`{module.__name__}.LICENCE`" in text, module.__name__


def test_the_labels_exercises_fold_their_discussions():
    exercises = (BOOK / "exercises.md").read_text()
    section = exercises[exercises.index("(exercises-labels)="):exercises.index("## The notebooks")]
    questions = re.findall(r"^\*\*(L\d)\.", section, flags=re.M)
    assert questions == ["L1", "L2", "L3"]
    assert section.count(":class: dropdown") == len(questions), "every question has a folded solution"
    assert "{ref}`exercises-labels`" in LABELS.read_text()


def exercise_ids() -> list[str]:
    return re.findall(r"^\*\*([A-Z]?\d+(?:\.\d+)?)\.", (BOOK / "exercises.md").read_text(), flags=re.M)


def test_the_guide_sorts_every_exercise_once():
    guide = GUIDE.read_text()
    section = guide[guide.index("## Exercises that check themselves"):guide.index("## Common misconceptions")]
    listed = re.findall(r"\b([A-Z]?\d+(?:\.\d+)?)(?=[,.]\s)", re.sub(r"\(.*?\)", "", section))
    ids = exercise_ids()
    assert len(ids) >= 30
    assert sorted(listed) == sorted(ids), (sorted(set(ids) - set(listed)), sorted(set(listed) - set(ids)))


def test_the_guide_shows_the_builds_times_and_types_none():
    guide = GUIDE.read_text()
    assert "```{include} notebooks/execution_status.md\n```" in guide
    assert "```{include} notebooks/execution_status.md\n```" in (BOOK / "status.md").read_text(), \
        "the guide includes the file the status page includes"
    durations = re.findall(r"\b(?:\d+(?:[.,]\d+)?|a few|few|several|some|a couple of)\s*(?:s|sec|seconds?|min|minutes?|"
                           r"h|hours?)\b", guide, flags=re.I)
    assert not durations, f"hand-typed times in the teacher's guide: {durations}"
    for words in ("## Learning objectives", "## Prerequisites", "## A module of two or three sessions",
                  "## Common misconceptions", "## Running it for a class", "levelling down", "seeds", "GPU"):
        assert words in guide, words
