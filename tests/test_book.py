"""The book: its sources say true things about the code, and the whole course builds.

Fast checks (no build): every TOC entry exists; every `finefcace` name the chapters mention
exists in the library; the preset table of book/decisions.md equals finefcace.presets; the
bibliography is the paper's 36 references in the paper's order; every citation resolves;
MathJax is vendored and configured (no CDN); the exercises' code runs.

Slow checks (marked ``book`` and ``slow``): the whole course is built once per session with
``scripts/course.py`` — the command `make book` runs — and every TOC page has its HTML.
``build_book_once`` is shared with tests/test_browser.py, so one session builds once.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
HTML = ROOT / "_build" / "html"
PAPER = Path(__file__).resolve().parents[2] / "shared" / "paper" / "FineFACE-paper.md"
EXECUTED_PREFIX = "book/notebooks/"


# ------------------------------------------------------------------------------ helpers


def toc_files() -> list[str]:
    """Every document of _toc.yml (root first), as written there (no suffix)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return files


def chapter_sources() -> list[Path]:
    """The hand-written chapters (book/*.md, not the generated notebook copies)."""
    return sorted(BOOK.glob("*.md"))


def inline_literals(text: str) -> list[str]:
    """Inline code literals of a MyST page, without fenced blocks and role targets ({doc}`x`)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.findall(r"(?<![`}])`([^`\n]+)`(?!`)", text)


def fenced_python(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def fenced_code(text: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced code block with a language (```python, ```bash, ...)."""
    return re.findall(r"^```(\w+)\n(.*?)^```", text, flags=re.S | re.M)


#: What marks an exercise's code as needing the default build's trained runs (runs/quick).
NEEDS_A_RUN = "needs a finished run"


@functools.cache
def library_vocabulary() -> frozenset[str]:
    """Every name a chapter may mention as code without a module prefix."""
    import finefcace
    from finefcace import mutual_learning, presets
    from finefcace.training.config import TrainConfig

    names: set[str] = set()
    for info in pkgutil.walk_packages(finefcace.__path__, "finefcace."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        names.add(info.name.rsplit(".", 1)[-1])
        for name, value in vars(module).items():
            names.add(name)
            if isinstance(value, type) and value.__module__.startswith("finefcace"):
                names.update(vars(value))
        source = Path(module.__file__).read_text()
        names.update(re.findall(r"self\.(\w+)\s*[:=]", source))  # instance attributes (model.num_experts)
        for value in vars(module).values():  # parameter names (on_step=, num_classes=)
            if callable(value) and getattr(value, "__module__", "").startswith("finefcace"):
                try:
                    names.update(inspect.signature(value).parameters)
                except (TypeError, ValueError):
                    pass
    for preset in presets.PRESETS.values():
        names.update(preset)
        names.update(v for v in preset.values() if isinstance(v, str))
    names.update(presets.PRESETS)
    names.update(TrainConfig.__dataclass_fields__)
    names.update(mutual_learning.step_names(3))
    return frozenset(names)


# Code literals that are not finefcace's (PyTorch, the paper's pseudo-code, file names, ...).
FOREIGN_LITERALS = {
    "DistributedDataParallel", "zero_grad", "einsum", "grid_sample", "equalized_odds_difference",
    "Randomly_choose_from", "F.interpolate", "torch.cuda.max_memory_allocated",
    "torch.utils.flop_counter.FlopCounterMode", "ResNet50_Weights.IMAGENET1K_V2", "torchrun",
    "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",  # torchvision layer names
}
LIBRARY_CLASSES = {"FineFACE": "finefcace.model.FineFACE", "FineFACEOutput": "finefcace.model.FineFACEOutput",
                   "Baseline": "finefcace.model.Baseline", "TrainConfig": "finefcace.training.config.TrainConfig",
                   "PRESETS": "finefcace.presets.PRESETS"}


def _resolve(dotted: str):
    """Import the longest module prefix of ``dotted`` and getattr the rest."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)  # AttributeError names the missing attribute
        return obj
    raise ModuleNotFoundError(dotted)


# ------------------------------------------------------------------------------ fast checks


def test_every_toc_entry_exists():
    missing = []
    for entry in toc_files():
        if entry.startswith(EXECUTED_PREFIX):
            source = ROOT / "notebooks" / f"{entry[len(EXECUTED_PREFIX):]}.ipynb"
        else:
            source = ROOT / f"{entry}.md"
        if not source.exists():
            missing.append(f"{entry} (expected {source.relative_to(ROOT)})")
    assert not missing, f"_toc.yml lists documents that do not exist: {missing}"


def test_every_chapter_is_in_the_toc():
    listed = set(toc_files())
    orphans = [p.name for p in chapter_sources() if f"book/{p.stem}" not in listed]
    assert not orphans, f"book/ chapters missing from _toc.yml (they would not be built): {orphans}"


def test_every_code_name_the_chapters_mention_exists():
    """A renamed function must not leave the book pointing at a name that is gone."""
    vocabulary = library_vocabulary()
    problems = []
    for path in chapter_sources():
        for literal in inline_literals(path.read_text()):
            name = re.sub(r"\(.*", "", literal, flags=re.S).strip()
            if not re.fullmatch(r"[A-Za-z_][\w.]*", name) or name in FOREIGN_LITERALS:
                continue
            head = name.split(".")[0]
            try:
                if head == "finefcace":
                    _resolve(name)
                elif head in LIBRARY_CLASSES:
                    _resolve(LIBRARY_CLASSES[head] + name[len(head):])
                elif "_" in name and "." not in name and name not in vocabulary:
                    raise NameError(f"{name} is defined nowhere in finefcace")
            except (ImportError, AttributeError, NameError) as error:
                problems.append(f"{path.name}: `{literal}` ({type(error).__name__}: {error})")
    assert not problems, "chapters mention code that does not exist:\n" + "\n".join(problems)


def _preset_table(text: str) -> list[tuple[str, str, str]]:
    """(key, paper value, official_code value) of decisions.md's switch table, whose rows read
    ``| `key` or {ref}`key <label>` | `paper value` | `official value` | paper | code |``."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        key = re.fullmatch(r"`(\w+)`|\{ref\}`(\w+) <[\w-]+>`", cells[0]) if len(cells) == 5 else None
        if key and cells[1].startswith("`") and cells[2].startswith("`"):
            rows.append((key.group(1) or key.group(2), cells[1].strip("`"), cells[2].strip("`")))
    return rows


def test_decisions_table_equals_the_presets():
    from finefcace.presets import PRESETS

    rows = _preset_table((BOOK / "decisions.md").read_text())
    assert len(rows) >= 15, f"the preset table of decisions.md was not found (parsed {len(rows)} rows)"
    wrong = []
    for key, paper, official in rows:
        for preset, written in (("paper", paper), ("official_code", official)):
            actual = PRESETS[preset].get(key, "<missing key>")
            if ast.literal_eval(written) != actual:
                wrong.append(f"{key}: decisions.md says {written} for `{preset}`, presets.py has {actual!r}")
    assert not wrong, "\n".join(wrong)
    differing = {k for k in PRESETS["paper"] if PRESETS["paper"][k] != PRESETS["official_code"].get(k)}
    listed = {r[0] for r in rows}
    assert differing <= listed, f"switches that differ between the presets but are missing from decisions.md: {differing - listed}"


def _bib_entries() -> list[dict[str, str]]:
    text = (BOOK / "references.bib").read_text()
    entries = []
    for match in re.finditer(r"^@(\w+)\{([^,]+),(.*?)^\}", text, flags=re.S | re.M):
        fields = dict(re.findall(r"^\s*(\w+)\s*=\s*\{(.*)\},?\s*$", match.group(3), flags=re.M))
        fields.update(type=match.group(1), key=match.group(2))
        entries.append(fields)
    return entries


def test_bibliography_is_the_papers_reference_list_in_its_order():
    entries = _bib_entries()
    assert len(entries) == 36, f"references.bib has {len(entries)} entries; the paper cites 36"
    assert len({e["key"] for e in entries}) == 36, "duplicate keys in references.bib"
    if not PAPER.is_file():
        pytest.skip(f"the paper is not at {PAPER}: checked the count only")
    text = PAPER.read_text()
    printed = re.findall(r"^(\d+)\. (.+)$", text[text.rindex("\nReferences"):], flags=re.M)[:36]
    assert [int(n) for n, _ in printed] == list(range(1, 37))
    for (number, reference), entry in zip(printed, entries):
        surname = reference.split(",")[0].strip()
        first_author = entry["author"].strip("{}").split(",")[0].strip()
        assert first_author == surname, f"[{number}] paper: {surname}; references.bib: {first_author}"
        year = re.findall(r"(?:19|20)\d\d", reference)[-1]
        assert entry["year"] == year, f"[{number}] paper year {year}; references.bib {entry['year']}"
        title_words = re.sub(r"[^a-z ]", "", entry["title"].lower()).split()[:4]
        assert " ".join(title_words) in re.sub(r"[^a-z ]", "", reference.lower()), \
            f"[{number}] title {entry['title']!r} not in the printed reference {reference!r}"


def book_markdown() -> dict[str, str]:
    """The Markdown the book renders from sources: every chapter (book/*.md) and the Markdown
    cells of every notebook, by file name."""
    import json

    pages = {path.name: path.read_text() for path in chapter_sources()}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        pages[path.name] = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return pages


def test_every_citation_resolves():
    """Every {cite} key of a chapter or a notebook's Markdown is in a .bib file the book loads
    (_config.yml's bibtex_bibfiles: the paper's list and the works beyond it)."""
    bibfiles = yaml.safe_load((ROOT / "_config.yml").read_text())["bibtex_bibfiles"]
    assert "book/references.bib" in bibfiles and "book/references_beyond_paper.bib" in bibfiles
    keys = set()
    for name in bibfiles:
        keys |= set(re.findall(r"^@\w+\{([^,\s]+),", (ROOT / name).read_text(), flags=re.M))
    unknown, cited = [], set()
    for page, text in book_markdown().items():
        for roles in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            cited |= {k.strip() for k in roles.split(",")}
            unknown += [f"{page}: {k.strip()}" for k in roles.split(",") if k.strip() not in keys]
    assert not unknown, f"citations of keys in none of {bibfiles}: {unknown}"
    assert {"keyes2018misgendering", "hamidi2018gender", "scheuerman2019computers"} <= cited


def test_commands_and_files_the_chapters_name_exist():
    """`python -m X` modules, `configs/...` files and `notebooks/...` the chapters tell readers
    to use must exist, so a reader following the book is never sent to a missing file."""
    import importlib.util

    missing = []
    for path in chapter_sources():
        text = path.read_text()
        for module in set(re.findall(r"python -m ([A-Za-z_][\w.]*)", text)):
            spec = importlib.util.find_spec(module)
            if spec is not None and spec.submodule_search_locations is not None:  # a package runs its __main__
                spec = importlib.util.find_spec(f"{module}.__main__")
            if spec is None:
                missing.append(f"{path.name}: python -m {module} (no such module, or a package without __main__)")
        for name in set(re.findall(r"\b((?:configs|notebooks|benchmarks|scripts|experiments)/[\w./-]+\.(?:yaml|ipynb|py))", text)):
            if not (ROOT / name).is_file():
                missing.append(f"{path.name}: {name}")
        for name in set(re.findall(r"`(\w+\.yaml)`", text)):
            if not (ROOT / "configs" / name).is_file():
                missing.append(f"{path.name}: configs/{name}")
    assert not missing, "chapters name commands or files that do not exist:\n" + "\n".join(sorted(missing))


def test_the_book_cites_nothing_outside_the_repository():
    """A reader has the book and the repository: no page or notebook sends them to the project's
    private specifications (`spec/...md`) or to the shared folder beside the checkout."""
    sources = chapter_sources() + sorted((ROOT / "notebooks").glob("*.ipynb"))
    outside = re.compile(r"\bspec/\w+\.md|\.\./shared\b|/work/shared")
    offenders = [f"{path.relative_to(ROOT)}: {match.group(0)}" for path in sources
                 for match in outside.finditer(path.read_text())]
    assert not offenders, "the book cites files its readers do not have:\n" + "\n".join(offenders)


def test_every_notebook_collapses_its_parameters_and_links_its_exercises():
    import json

    exercises = (BOOK / "exercises.md").read_text()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        parameters = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert parameters and "hide-input" in parameters[0]["metadata"]["tags"], \
            f"{path.name}: tag its parameters cell hide-input (collapsed in the book, papermill still finds it)"
        label = f"exercises-{path.name[:2]}"
        assert f"({label})=" in exercises, f"book/exercises.md has no section ({label})= for {path.name}"
        assert any(label in "".join(c["source"]) for c in cells if c["cell_type"] == "markdown"), \
            f"{path.name} does not link its exercises ({{ref}}`{label}`)"


def test_mathjax_is_vendored_and_used_offline():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    path = config["mathjax_path"]
    assert "://" not in path, "MathJax must not come from a CDN: the build and reading machines are offline"
    static_dirs = [ROOT / d for d in config["html_static_path"]]
    script = next((d / path for d in static_dirs if (d / path).is_file()), None)
    assert script is not None, f"mathjax_path {path} is not a file under {config['html_static_path']}"
    fonts = list((script.parent / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert len(fonts) >= 20, "the CommonHTML fonts MathJax loads must be vendored beside the script"
    assert "Apache License" in (script.parent / "LICENSE").read_text()
    size = sum(f.stat().st_size for f in script.parent.rglob("*") if f.is_file())
    assert size < 5 * 2**20, f"vendored MathJax is {size / 2**20:.1f} MiB; keep it to what the book needs"


def test_cost_chapter_includes_the_benchmark_table():
    assert "{include} ../benchmarks/results/cost_table.md" in (BOOK / "cost.md").read_text()
    assert (ROOT / "benchmarks" / "results" / "cost_table.md").is_file(), \
        "benchmarks/results/cost_table.md is missing: run `python benchmarks/run.py` (the book includes it)"


def test_every_exercise_code_block_is_run_by_a_test():
    """No exercise code escapes the two tests that run it: every fenced block is Python or bash;
    the Python blocks are run by test_the_exercises_code_runs (self-contained) or, marked
    "needs a finished run", by the build test on the default build's runs, as are the bash
    commands (they train). A block in another language, or an unlabelled one, would be skipped."""
    text = (BOOK / "exercises.md").read_text()
    openings = re.findall(r"^```(\S*)$", text, flags=re.M)
    blocks = fenced_code(text)
    assert len(blocks) == len(openings) // 2, "an exercise code block has no language: label it python or bash"
    languages = {language for language, _ in blocks}
    assert languages <= {"python", "bash"}, f"exercise code in {languages - {'python', 'bash'}} is run by no test"
    fast = [code for language, code in blocks if language == "python" and NEEDS_A_RUN not in code]
    on_the_build = [code for language, code in blocks if language == "bash" or NEEDS_A_RUN in code]
    assert len(fast) + len(on_the_build) == len(blocks)
    assert all("runs/quick/" in code for code in on_the_build if NEEDS_A_RUN in code), \
        "a block that needs a finished run must read one of the default build's runs (runs/quick/...)"


@pytest.mark.slow
def test_the_exercises_code_runs():
    """Every ```python block of the exercises runs (blocks that need a finished run say so).

    One interpreter runs all blocks, each in a fresh namespace (torch is imported once)."""
    blocks = [b for b in fenced_python((BOOK / "exercises.md").read_text()) if NEEDS_A_RUN not in b]
    assert len(blocks) >= 4
    runner = (
        "import sys, traceback\n"
        f"blocks = {blocks!r}\n"
        "for i, block in enumerate(blocks):\n"
        "    try:\n"
        "        exec(compile(block, f'<exercise block {i}>', 'exec'), {'__name__': '__main__'})\n"
        "    except Exception:\n"
        "        print(f'--- exercise block {i} failed:\\n{block}', file=sys.stderr)\n"
        "        traceback.print_exc()\n"
        "        sys.exit(1)\n"
    )
    result = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]


# ------------------------------------------------------------------------------ the build


@functools.cache
def build_book_once() -> subprocess.CompletedProcess:
    """Run the course command once per test session (shared with tests/test_browser.py)."""
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "course.py")], cwd=ROOT,
                          capture_output=True, text=True, timeout=40 * 60)


@pytest.fixture(scope="session")
def built_book() -> Path:
    result = build_book_once()
    assert result.returncode == 0, (
        f"the course command failed (exit {result.returncode}):\n{result.stderr[-4000:]}\n{result.stdout[-2000:]}")
    return HTML


@pytest.mark.book
@pytest.mark.slow
def test_every_toc_page_has_its_html(built_book):
    missing = [entry for entry in toc_files() if not (built_book / f"{entry}.html").is_file()]
    assert (built_book / "index.html").is_file()
    assert not missing, f"TOC pages without HTML: {missing}"


@pytest.mark.book
@pytest.mark.slow
def test_the_exercises_that_need_a_finished_run_run_on_the_default_build(built_book, tmp_path):
    """The solutions that read a trained run (``needs a finished run``) run on the runs the
    default build left under runs/quick, from the project root as a reader would run them;
    the exercises' bash commands (they train a short run) run too, with their run folder moved
    to a temporary one so that they leave nothing in the checkout, and capped at one training
    and one evaluation batch (a later ``--set`` wins), their decoded-image cache in the temporary
    folder too: every key and flag of the reader's command is checked, at a fraction of its cost (exercise 2.3's Swin-T run at 224 px as printed takes
    several minutes on the build's CPU). Together with
    test_the_exercises_code_runs this runs every code block of book/exercises.md
    (test_every_exercise_code_block_is_run_by_a_test checks that none is left out)."""
    blocks = fenced_code((BOOK / "exercises.md").read_text())
    python = [code for language, code in blocks if language == "python" and NEEDS_A_RUN in code]
    commands = [code for language, code in blocks if language == "bash"]
    assert python, "no exercise reads a finished run: the fast test covers them all"
    for index, block in enumerate(python):
        result = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert result.returncode == 0, f"exercise block {index} failed on the default build:\n{block}\n{result.stderr[-3000:]}"
    for index, command in enumerate(commands):
        command = re.sub(r"run_dir=\S+", f"run_dir={tmp_path / f'exercise-{index}'}", command)
        command = command.replace("python -m", f"{sys.executable} -m").rstrip()
        if "finefcace train" in command:  # the decoded images too go to the temporary folder (not part of a
            # run's identity): exercise 2.3 decodes every image at 224 px, 0.4 GB the checkout need not keep
            command += f" --set max_batches=1 --set max_eval_batches=1 --set image_cache={tmp_path / f'cache-{index}'}"
        result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=1200, cwd=ROOT)
        assert result.returncode == 0, f"exercise command {index} failed:\n{command}\n{result.stderr[-3000:]}"


@pytest.mark.book
@pytest.mark.slow
def test_no_page_loads_anything_from_the_network(built_book):
    offenders = {}
    for page in built_book.rglob("*.html"):
        urls = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"', page.read_text())
        if urls:
            offenders[str(page.relative_to(built_book))] = urls
    assert not offenders, f"pages load resources from the network (offline readers get nothing): {offenders}"


@pytest.mark.book
@pytest.mark.slow
def test_status_page_says_how_the_book_was_built(built_book):
    text = (built_book / "book" / "status.html").read_text()
    assert "Profile" in text and "execution time" in text and "total" in text


@pytest.mark.book
@pytest.mark.slow
def test_synthetic_results_are_labelled_synthetic(built_book):
    profile = (ROOT / "book" / "notebooks" / "execution_status.json").read_text()
    pages = [built_book / "book" / "results.html", *sorted((built_book / "book" / "notebooks").glob("05_*.html"))]
    if "paper" in profile:
        pytest.skip("built with a paper profile: the results may be real")
    for page in pages:
        assert "synthetic" in page.read_text().lower(), f"{page.name} shows results without saying they are synthetic"


@pytest.mark.book
@pytest.mark.slow
def test_rendered_bibliography_keeps_the_papers_numbers(built_book):
    """Entry [n] of the rendered bibliography is the paper's reference [n] (not citation order)."""
    html = (built_book / "book" / "bibliography.html").read_text()
    rendered = re.findall(r'fn-bracket">\[</span>(\d+)<span class="fn-bracket">\]</span></span>\s*<p>([^<]+)', html)
    entries = _bib_entries()
    assert [int(n) for n, _ in rendered] == list(range(1, len(entries) + 1))
    for (number, text), entry in zip(rendered, entries):
        surname = entry["author"].strip("{}").split(",")[0].strip()
        authors = text.replace("\xa0", " ")[:40]  # the first author leads the entry
        assert surname in authors, f"[{number}] shows {text!r}, expected {surname} first"


@pytest.mark.book
@pytest.mark.slow
def test_the_rendered_book_links_code_to_its_source_and_the_paper(built_book):
    """book/_ext/source_links.py: a chapter's `finefcace.…` literals are links to a line of a
    source page rendered into the book (offline), whose anchor exists; the intro links the
    paper's public page."""
    method = (built_book / "book" / "method.html").read_text()
    links = re.findall(r'href="\.\./(_modules/finefcace/[\w/]+\.html)#(L-\d+)"', method)
    assert len(links) >= 10, "the method chapter's code names do not link to their source"
    for page, anchor in set(links):
        source = (built_book / page).read_text()
        assert f'id="{anchor}"' in source, f"{page} has no line anchor {anchor}"
    assert "def finefcace_iteration" in re.sub(r"<[^>]+>", "", (built_book / "_modules" / "finefcace" / "mutual_learning.html").read_text())
    assert "https://arxiv.org/abs/2408.16881" in (built_book / "book" / "intro.html").read_text()


#: Pages whose prose must quote no time by hand (the status page has the build's measured ones).
TIMED_PAGES = ("intro.md", "method.md", "results.md", "cost.md", "exercises.md", "bibliography.md")


def test_the_chapters_type_no_time_by_hand():
    """A time typed into prose ("a few minutes", "7 minutes") goes stale with the next machine
    or build; the status page gives the build's measured times and the generated tables their
    own. Code blocks (a reader's commands) are not prose."""
    pattern = re.compile(r"\b(?:\d+(?:[.,]\d+)?|a few|few|several|some|a couple of|seven|ten)\s*(?:s|sec|seconds?|min|"
                         r"minutes?|h|hours?)\b|\bin (?:seconds|minutes|hours)\b", flags=re.I)
    found = []
    for name in TIMED_PAGES:
        prose = re.sub(r"^```.*?^```", "", (BOOK / name).read_text(), flags=re.S | re.M)
        found += [f"{name}: {match.group(0)!r}" for match in pattern.finditer(prose)]
    assert not found, "hand-typed times:\n" + "\n".join(found)
