"""Sphinx extension: drop duplicate inline <script> tags from every page.

Why: Sphinx 7.4 registers an inline script added with ``app.add_js_file(None, body=...)``
after the builder started (sphinx-thebe and sphinx-togglebutton do this) twice — once with
filename ``None``, once with ``''`` — and the two copies compare unequal. The duplicated
``const THEBE_JS_URL = ...`` then throws "Identifier 'THEBE_JS_URL' has already been
declared" in every page, which the browser check (tests/test_browser.py) rightly reports.
This keeps the first of any scripts that are equal once ``None`` is read as ``''``.
Enabled in _config.yml (``sphinx.local_extensions``).
"""

from __future__ import annotations


def _key(script) -> tuple:
    filename = getattr(script, "filename", script) or ""
    attributes = getattr(script, "attributes", {}) or {}
    return (str(filename), getattr(script, "priority", None), tuple(sorted(attributes.items())))


def drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)  # after the others
    return {"parallel_read_safe": True, "parallel_write_safe": True}
