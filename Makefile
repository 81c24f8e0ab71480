# The two commands a newcomer needs (see README.md):
#   make book   render the whole course on the embedded synthetic default
#   make test   the whole test suite (unit tests, notebooks via nbval, the book build, a browser check)
# Each creates .venv and installs the pinned requirements when they are missing or changed.

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.finefcace-installed
PROFILE ?=

.PHONY: book test venv clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

book: $(STAMP)
	$(PY) scripts/course.py $(if $(PROFILE),--profile $(PROFILE))

test: $(STAMP)
	$(PY) scripts/ensure_browser.py
	$(PY) -m pytest

clean:
	rm -rf _build book/notebooks runs/quick data/synthetic
