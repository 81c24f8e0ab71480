"""Sphinx extension: a bibliography style that keeps the order of the .bib file.

book/references.bib lists the FineFACE paper's 36 references in the paper's order, so that
entry n of book/bibliography.md is the paper's "[n]". sphinxcontrib-bibtex's ``unsrt`` style
orders entries by first citation in the book instead; this registers a pybtex style,
``paper_order`` (``unsrt`` formatting, numeric labels), whose sorting is the position in the
.bib files named by ``bibtex_bibfiles``. Enabled in _config.yml (``sphinx.local_extensions``);
used as ``:style: paper_order`` in book/bibliography.md.
"""

from __future__ import annotations

import re
from pathlib import Path

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.sorting import BaseSortingStyle

#: lower-cased key -> position in the .bib files (filled when the Sphinx config is read)
BIB_ORDER: dict[str, int] = {}


class PaperOrderSorting(BaseSortingStyle):
    def sorting_key(self, entry):
        key = entry.key.lower()
        if key not in BIB_ORDER:
            raise KeyError(f"bibliography entry {entry.key!r} is not in the .bib files read at start-up")
        return BIB_ORDER[key]


class PaperOrderStyle(UnsrtStyle):
    default_sorting_style = "paper_order"


def read_bib_order(app, config) -> None:
    BIB_ORDER.clear()
    for name in config.bibtex_bibfiles:
        text = (Path(app.confdir) / name).read_text(encoding="utf-8")
        for key in re.findall(r"^@\w+\{([^,\s]+),", text, flags=re.M):
            BIB_ORDER.setdefault(key.lower(), len(BIB_ORDER))


def setup(app):
    register_plugin("pybtex.style.sorting", "paper_order", PaperOrderSorting)
    register_plugin("pybtex.style.formatting", "paper_order", PaperOrderStyle)
    app.connect("config-inited", read_bib_order)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
