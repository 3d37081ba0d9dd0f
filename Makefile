# iommu_lab: everything a fresh machine with Python 3.11 needs, in two commands.
#   make lab    set up, then open JupyterLab on the tutorials in notebooks/
#   make test   set up, then run the whole test suite (unit, notebooks, Binder, browser)
# Set-up is idempotent: the virtual environment is made once and re-installed only when
# pyproject.toml changes.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

export MPLBACKEND := Agg
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: test lab setup bench gallery chromium clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.installed-notebook: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[notebook]'
	touch $@

setup: $(VENV)/.installed-test

# The browser test drives Debian's chromium (no browser download). Install it when missing;
# if that is impossible the browser test says so and skips, it never passes silently.
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the browser test"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null \
	  || echo "WARNING: could not install chromium; the browser test will be skipped"; \
	else echo "WARNING: no apt-get; the browser test will be skipped"; fi

test: $(VENV)/.installed-test chromium
	$(PY) -m pytest

# Root (containers, CI machines) must say --allow-root to Jupyter.
ALLOW_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

lab: $(VENV)/.installed-notebook
	$(BIN)/jupyter lab --notebook-dir=notebooks $(ALLOW_ROOT) notebooks/00-start-here.ipynb

bench: $(VENV)/.installed-test
	-@$(PY) -m pip install --quiet -e '.[bench]' || echo 'libcachesim did not install; bench_replay prints no peer anchor'
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

gallery: $(VENV)/.installed-test
	$(PY) -m iommu_lab.gallery out/gallery

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache out
