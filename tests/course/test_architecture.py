"""finefcace.course.architecture: the architecture diagram says what the library does.

The labels are read back from the committed SVG (its text is kept as text): the N + 2 step
names of :func:`finefcace.mutual_learning.step_names` in the order they run, the expert stages
of the paper's model, and the fused views; and the committed file is what
``scripts/architecture_diagram.py`` draws today."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from finefcace.course import architecture
from finefcace.model import FineFACE
from finefcace.mutual_learning import step_names

ROOT = Path(__file__).resolve().parents[2]
SVG = ROOT / "book" / "_static" / "finefcace_architecture.svg"


@pytest.fixture(scope="module")
def facts():
    return architecture.architecture_facts()


def svg_text() -> str:
    return html.unescape(" ".join(re.findall(r"<text[^>]*>(.*?)</text>", SVG.read_text(), flags=re.S)))


def test_facts_are_the_libraries(facts):
    model = FineFACE.from_preset("paper", "resnet50", 2)
    assert facts.expert_stages == tuple(model.expert_stages)
    assert facts.stage_strides == tuple(model.stage_strides)
    assert facts.step_names == tuple(step_names(model.num_experts))
    assert len(facts.step_names) == facts.num_experts + 2


def test_step_descriptions_follow_algorithm_1(facts):
    step_descriptions = architecture.step_descriptions(facts)
    assert [name for name, _ in step_descriptions] == [f"step {i}: {n}" for i, n in enumerate(facts.step_names, start=1)]
    assert "every CAM" in step_descriptions[0][1]  # the regions come from step 1's forward pass
    assert step_descriptions[facts.num_experts][1].startswith("A_oval through all experts")
    assert "concatenation" in step_descriptions[-1][1]


def test_the_committed_diagram_shows_the_libraries_names(facts):
    text = svg_text()
    assert f"N + 2 = {len(facts.step_names)} optimizer steps" in text
    positions = [text.index(f"step {i}: {name}") for i, name in enumerate(facts.step_names, start=1)]
    assert positions == sorted(positions), "the steps must appear in the order they run"
    for k, stage in enumerate(facts.expert_stages, start=1):
        assert f"e_{k}: stages 1..{stage}" in text
    assert f"mean of the {2 * (facts.num_experts + 1)}" in text  # fused: raw and A_oval, N + 1 heads each


@pytest.mark.slow
def test_the_committed_diagram_is_what_the_script_draws(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("architecture_diagram", ROOT / "scripts" / "architecture_diagram.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    drawn = script.write(tmp_path / "drawn.svg")
    assert drawn.read_bytes() == SVG.read_bytes(), "book/_static/finefcace_architecture.svg is stale: rerun the script"


@pytest.mark.parametrize("page", ["intro.md", "method.md"])
def test_the_intro_and_method_pages_show_the_diagram_with_alt_text(page):
    text = (ROOT / "book" / page).read_text()
    figure = re.search(r"```\{figure\} _static/finefcace_architecture\.svg\n(.*?)```", text, flags=re.S)
    assert figure, f"book/{page} does not show the architecture diagram"
    alt = re.search(r"^:alt: (.+)$", figure.group(1), flags=re.M)
    assert alt and len(alt.group(1).split()) >= 20, "the diagram needs alt text that says what it shows"
