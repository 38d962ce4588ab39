# Two commands do all the set-up on a fresh machine:
#   make lab    create .venv, install the course, open it in JupyterLab
#   make test   create .venv, install the course and the test tools, run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first, pinned: on the course machines this is a CPU build already on disk, and on a
# laptop it is the ordinary PyPI build. The package itself asks only for torch>=2.4.
TORCH ?= torch==2.13.0
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: lab test notebooks figures site serve-site

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# One stamp per TORCH: `make lab TORCH=...` installs that torch even when .venv exists.
# --force-reinstall --no-deps swaps the build even when the version is the same (a CUDA wheel
# for a CPU one); the second install brings whatever that torch depends on.
TORCH_STAMP := $(VENV)/.torch-$(shell printf '%s' '$(TORCH)' | cksum | cut -d' ' -f1)

$(TORCH_STAMP): | $(BIN)/python
	$(BIN)/pip install -q --force-reinstall --no-deps $(TORCH)
	$(BIN)/pip install -q $(TORCH)
	rm -f $(VENV)/.torch-*
	touch $@

$(VENV)/.lab: pyproject.toml $(TORCH_STAMP) | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test: pyproject.toml $(TORCH_STAMP) | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "browser tests need Debian's chromium: sudo apt-get install chromium"; fi; }
	touch $@ $(VENV)/.lab

# as root (containers, course machines) Jupyter refuses to start without --allow-root
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

# course/learner/ holds the learners' nbgrader settings (the Assignments tab's exchange)
lab: $(VENV)/.lab
	mkdir -p course/exchange
	JUPYTER_CONFIG_PATH=$(CURDIR)/course/learner $(BIN)/jupyter lab $(ROOT_FLAG) --ServerApp.root_dir=$(CURDIR) \
	  --LabApp.default_url=/lab/tree/course/release

test: $(VENV)/.test
	$(BIN)/python -m pytest

# for contributors: rebuild the notebooks from course/notebooks/*.py, redraw the lessons'
# figures, or preview the site
notebooks: $(VENV)/.test
	$(BIN)/python course/build.py

# the lessons' figures, drawn from solutions/ (site/figures/make.py)
figures: $(VENV)/.lab
	$(BIN)/python site/figures/make.py

serve-site: $(VENV)/.test
	$(BIN)/mkdocs serve
