# The two commands: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DB     ?= sqlite:///var/preau.db

.PHONY: demo test lint typecheck unit fuzz bench clean chromium lemonldap

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Stamps: reinstall when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $@ $(VENV)/.installed

## demo: install, build the demo school (30 classes x 28 students, parent messaging on and
## every parent opted in), serve http://127.0.0.1:8000
demo: $(VENV)/.installed
	@mkdir -p var
	$(BIN)/preau demo-school --classes 30 --students 28 --seed 1 > var/demo-school.json
	PREAU_DATABASE_URL=$(DB) $(BIN)/preau directory import var/demo-school.json
	PREAU_DATABASE_URL=$(DB) $(BIN)/preau demo-setup
	PREAU_DATABASE_URL=$(DB) $(BIN)/preau serve --demo

## test: install the test extras, run ruff, mypy and the whole suite
test: $(VENV)/.installed-test chromium lemonldap lint typecheck unit

## chromium: the browser tests (tests/browser) drive Debian's Chromium through Playwright
## (the pip package only: `playwright install` is never used); install it when missing.
chromium:
	@test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update && $$SUDO apt-get install -y chromium; }

## lemonldap: the sign-in tests run a private LemonLDAP::NG (tests/identity_provider.py):
## Debian's portal, run by Starman, with SQLite accounts; install what is missing.
## (--no-install-recommends keeps nginx out; the portal's own recommends it needs are named.)
LLNG_PACKAGES := liblemonldap-ng-portal-perl lemonldap-ng-fastcgi-server libplack-perl starman \
	libdbi-perl libdbd-sqlite3-perl libgd-securityimage-perl libimage-magick-perl \
	libio-string-perl libxml-simple-perl libstring-random-perl libdigest-hmac-perl \
	libwww-perl libipc-run-perl libmime-tools-perl libunicode-string-perl \
	libconvert-base32-perl libio-socket-timeout-perl
lemonldap:
	@dpkg-query -W -f='$${Status}\n' $(LLNG_PACKAGES) 2>/dev/null \
		| grep -c '^install ok installed$$' | grep -qx $(words $(LLNG_PACKAGES)) || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y \
			--no-install-recommends $(LLNG_PACKAGES); }

lint: $(VENV)/.installed-test
	$(BIN)/ruff check server tests bench

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

unit: $(VENV)/.installed-test chromium lemonldap
	$(BIN)/pytest -q

## fuzz: the fuzz test of tests/test_fuzz.py, longer: 100,000 frames (make test runs 20,000)
FUZZ_FRAMES ?= 100000
fuzz: $(VENV)/.installed-test
	PREAU_FUZZ_FRAMES=$(FUZZ_FRAMES) $(BIN)/pytest -q -s tests/test_fuzz.py

## bench: run the benchmarks and rewrite bench/RESULTS.md
bench: $(VENV)/.installed-test
	$(BIN)/python -m bench.gatekeeper

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache .hypothesis test-artifacts
