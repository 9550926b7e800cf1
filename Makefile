# The two commands of the README (docs/running.md has the details):
#   make results   run every notebook in full mode on the embedded corpus, write results/ and the course book
#   make test      kdlib's unit tests + every notebook in smoke mode (what CI runs; installs Debian's chromium
#                  for the book's browser test when it is missing)
# Both create the virtual environment and build the corpus they need when it is absent; make results also
# builds the real-speech evaluation set (python -m kdlib.data.corpus real build: Debian voice prompts).
# Interactive: make lab (full mode) or make lab MODE=smoke opens JupyterLab on lab/, a git-ignored working copy of
# notebooks/ (python -m kdlib.course.runner lab-copy: copies what is missing, never overwrites), corpora built.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup corpus results test lab browser
MODE ?= full
setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 > /dev/null
	touch $(STAMP)

corpus: setup
	$(BIN)/python -m kdlib.data.corpus build --config default

results: corpus
	$(BIN)/python -m kdlib.data.corpus real build || echo "real-speech set not built (needs apt-get and PyPI); notebook 00 skips its real-voice section"
	$(BIN)/python -m kdlib.course.runner run
	$(BIN)/python -m kdlib.course.book build

# The book's browser test draws pages in headless Chromium: Debian's package, installed once when missing.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	@command -v chromium > /dev/null || command -v chromium-browser > /dev/null || command -v google-chrome > /dev/null || \
	{ echo "installing Debian's chromium for the browser tests (apt-get, about 1 min)"; \
	  $(SUDO) apt-get install -y -q chromium > /dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q > /dev/null && $(SUDO) apt-get install -y -q chromium > /dev/null; }; }

test: setup browser
	$(BIN)/python -m kdlib.data.corpus build --config smoke
	KDLIB_SMOKE=1 $(BIN)/python -m pytest tests notebooks --nbmake --nbmake-timeout=300

lab: setup
	$(BIN)/python -m kdlib.data.corpus build --config smoke
	$(BIN)/python -m kdlib.data.corpus build --config default
	$(BIN)/python -m kdlib.course.runner lab-copy
	KDLIB_SMOKE=$(if $(filter smoke,$(MODE)),1,0) $(BIN)/jupyter lab lab/ $$($(BIN)/python -m kdlib.course.runner lab-options) $(if $(filter 0,$(shell id -u)),--allow-root)
