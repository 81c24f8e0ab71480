"""Sphinx extension: every code literal that names the library links to its source, in the book.

Why: the course promises that the few lines of library code behind a cell are one click away.
``sphinx.ext.viewcode`` and ``sphinx.ext.linkcode`` only link objects that ``autodoc``
documents, and this book documents none (its chapters name functions in running text, as
`finefcace.attention.class_activation_maps`); linkcode would also send an offline reader to a
web host. So this extension does what viewcode does for autodoc, for the book's own literals:

- each inline literal whose text names an object of ``finefcace`` — ``finefcace.x.y``, or one of
  the classes the chapters name without their module (``FineFACE.class_weights``) — becomes a
  link to the line that defines it;
- every module of ``finefcace`` gets a page of its highlighted source, with an anchor per line
  (``_modules/finefcace/<module>.html#L-<line>``), written into the book, so the links work
  offline and always show the code the book was built from.

Enabled in _config.yml (``sphinx.local_extensions``); tests/test_source_links.py checks the
resolution, and the build test that the rendered pages carry the links.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
from pathlib import Path
from typing import Any

from docutils import nodes

PACKAGE = "finefcace"
#: Classes the chapters name without their module (as tests/test_book.py's LIBRARY_CLASSES).
ALIASES = {"FineFACE": "finefcace.model.FineFACE", "FineFACEOutput": "finefcace.model.FineFACEOutput",
           "Baseline": "finefcace.model.Baseline", "TrainConfig": "finefcace.training.config.TrainConfig",
           "PRESETS": "finefcace.presets.PRESETS"}
#: Where the source pages go, and the prefix of their line anchors.
PAGES = "_modules"
ANCHOR = "L"


def _resolve_object(dotted: str) -> tuple[Any, Any, str] | None:
    """(object, its module, the last attribute name) for a dotted name, or None."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        module = obj
        try:
            for attr in parts[cut:]:
                owner, obj = obj, getattr(obj, attr)
                if inspect.isclass(owner) or inspect.ismodule(owner):
                    module = inspect.getmodule(owner) or module
        except AttributeError:
            return None
        return obj, module, parts[-1]
    return None


def _definition_line(obj: Any, module: Any, name: str) -> int:
    """The line of ``obj``'s definition in ``module``'s source; for a constant or an attribute,
    the first line that assigns ``name``; else 1."""
    target = obj.fget if isinstance(obj, property) else inspect.unwrap(obj) if callable(obj) else obj
    if inspect.ismodule(target):
        return 1
    if inspect.isclass(target) or inspect.isfunction(target) or inspect.ismethod(target):
        try:
            if inspect.getsourcefile(target) == inspect.getsourcefile(module):
                return inspect.getsourcelines(target)[1]
        except (OSError, TypeError):
            pass
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return 1
    match = re.search(rf"^[ \t]*(?:def |class )?{re.escape(name)}\b[ \t]*(?:[:=(]|$)", source, flags=re.M)
    return source[:match.start()].count("\n") + 1 if match else 1


def resolve(text: str) -> tuple[str, int] | None:
    """(module name, line) of the library object a code literal names, or None when it names
    none: ``finefcace.predict.fused_logits(model, images)`` → (``finefcace.predict``, its line)."""
    name = re.sub(r"\(.*", "", text, flags=re.S).strip()
    if not re.fullmatch(r"[A-Za-z_][\w.]*", name):
        return None
    head = name.split(".")[0]
    if head in ALIASES:
        name = ALIASES[head] + name[len(head):]
    elif head != PACKAGE:
        return None
    found = _resolve_object(name)
    if found is None:
        return None
    obj, module, last = found
    module_name = getattr(module, "__name__", "")
    if not (module_name == PACKAGE or module_name.startswith(PACKAGE + ".")):
        return None
    return module_name, _definition_line(obj, module, last)


def page_name(module_name: str) -> str:
    return f"{PAGES}/{module_name.replace('.', '/')}"


def link_literals(app, doctree, docname: str) -> None:
    """Wrap every inline literal that names the library in a link to its source line."""
    if app.builder.format != "html":
        return
    for literal in list(doctree.findall(nodes.literal)):
        if isinstance(literal.parent, nodes.reference):
            continue
        found = resolve(literal.astext())
        if found is None:
            continue
        module_name, line = found
        uri = app.builder.get_relative_uri(docname, page_name(module_name)) + f"#{ANCHOR}-{line}"
        reference = nodes.reference("", "", internal=True, refuri=uri, classes=["source-link"],
                                    reftitle=f"source: {module_name}, line {line}")
        literal.replace_self(reference)
        reference.append(literal)


def library_modules() -> list[str]:
    """Every module of the package (``__main__`` included: it is code a reader runs)."""
    package = importlib.import_module(PACKAGE)
    return [PACKAGE] + sorted(info.name for info in pkgutil.walk_packages(package.__path__, PACKAGE + "."))


def source_pages(app):
    """One page per module: its highlighted source with an anchor per line."""
    if app.builder.format != "html":
        return
    for module_name in library_modules():
        spec = importlib.util.find_spec(module_name)  # read, never imported: __main__ would run the CLI
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        source = Path(spec.origin).read_text(encoding="utf-8")
        body = app.builder.highlighter.highlight_block(source, "python", linenos=True, lineanchors=ANCHOR,
                                                       anchorlinenos=True)
        title = f"Source of {module_name}"
        yield page_name(module_name), {"title": title, "body": f"<h1>{title}</h1>\n{body}", "parents": []}, "page.html"


def setup(app):
    app.connect("doctree-resolved", link_literals)
    app.connect("html-collect-pages", source_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
