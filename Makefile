# The two commands a newcomer needs (see README.md):
#   make book   render the whole course on the embedded synthetic default
#   make test   the whole test suite (unit tests, notebooks via nbval, the book build, a browser check)
#   make test-fast  the unit tests only: no book build, no notebook execution, nothing marked slow
# On a GPU machine (its own Python; nothing installed): make gpu-check OUT=dir  (scripts/gpu_check.py)
# Each creates .venv and installs the pinned requirements when they are missing or changed.

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.finefcace-installed
PROFILE ?=

.PHONY: book test test-fast venv clean gpu-check

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

book: $(STAMP)
	$(PY) scripts/course.py $(if $(PROFILE),--profile $(PROFILE))

# Two sessions, one after the other, both always run (the exit status is the worse of the two):
# the course build and what reads it (both cores for the build's training, as `make book`), then
# every other test under pytest-xdist, one worker per core (conftest.py, tests/conftest.py).
test: $(STAMP)
	$(PY) scripts/ensure_browser.py
	$(PY) -m pytest -m course_build; build=$$?; \
	$(PY) -m pytest -n auto -m "not course_build"; rest=$$?; \
	exit $$(( build > rest ? build : rest ))

# What a developer runs after changing a function: every test not marked slow or book, in tests/
# only (nbval's notebooks and the book build are what `make test` adds), under pytest-xdist with
# one worker per core (tests/conftest.py gives each worker's torch one thread).
test-fast: $(STAMP)
	$(PY) -m pytest -n auto -m "not slow and not book" tests

# No venv: the GPU machine's own python3 runs the check from the source tree.
OUT ?= gpu_check_results
gpu-check:
	python3 scripts/gpu_check.py --out $(OUT)

clean:
	rm -rf _build book/notebooks runs/quick data/synthetic
