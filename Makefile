# The two commands a newcomer needs (README.md): `make run` and `make test`.
# Each does its own setup first: a virtual environment with the project installed,
# and the Debian packages the lab needs, installed with apt-get when missing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# command -> Debian package. The lab uses real parts: mosquitto for the broker,
# nftables and iproute2 (ip, tc) for the carrier network, picocom for the console,
# procps for sysctl (no conntrack tool: flows are read over netlink, issue 10), tmux to drive picocom in the console tests.
# ModemManager (with dbus-daemon and unshare) is the peer check of the virtual modem
# (tests/integration/test_peer_modemmanager.py).
APT_NEEDS := mosquitto:mosquitto nft:nftables ip:iproute2 tc:iproute2 picocom:picocom \
             sysctl:procps tmux:tmux \
             ModemManager:modemmanager mmcli:modemmanager dbus-daemon:dbus-daemon unshare:util-linux
# Packaging (issue 14): dpkg-deb builds the .deb, ar lists the .ipk, systemd-analyze
# verifies and scores the unit (Debian 12 ships it in the systemd package).
APT_NEEDS += dpkg-deb:dpkg ar:binutils systemd-analyze:systemd
# The system test (issue 19, tests/system, docs/system-test.md): mmdebstrap builds a
# Debian 12 root from Debian's archive, systemd-nspawn boots it with systemd as PID 1,
# nsenter runs the operator's commands inside, openssl signs the factory's CSR.
APT_NEEDS += mmdebstrap:mmdebstrap systemd-nspawn:systemd-container nsenter:util-linux openssl:openssl
# The renter's status page (issue 25, tests/lab/test_lab_page.py): headless Chromium opens it
# from the lab's LAN namespace, and a Japanese font lets its screenshots show the Japanese page.
APT_NEEDS += chromium:chromium
# file -> Debian package, for what is not a command (checked with test -e).
APT_FILES := /usr/share/fonts/opentype/ipafont-gothic/ipag.ttf:fonts-ipafont-gothic

.PHONY: all setup deps run test test-oldest oldest-setup bench mutation soak lint clean package

all: test

setup: deps $(STAMP)

deps:
	@missing=""; for pair in $(APT_NEEDS); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	for pair in $(APT_FILES); do file=$${pair%%:*}; pkg=$${pair##*:}; \
	  test -e $$file || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip >/dev/null
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

# The oldest dependencies the packages declare (issue 28): a second venv with exactly the
# versions in packaging/oldest-deps.txt (the oldest a target distribution ships; pip
# constraints, so the test tools of '.[test]' stay current), rebuilt from scratch whenever
# that file or pyproject.toml changes. OLDEST_TESTS is every test of certificates,
# provisioning, renewal, sealing, the cloud link and netlink (namespaces: root), every
# module imported for real, and the check that the venv holds the pins (tests/parts.py).
OLDEST_VENV  := .venv-oldest
OLDEST_PINS  := packaging/oldest-deps.txt
OLDEST_STAMP := $(OLDEST_VENV)/.installed
# What runs there, and how, is tests/parts.py's part "oldest" (one definition for make test
# and make test-oldest).

oldest-setup: deps $(OLDEST_STAMP)

$(OLDEST_STAMP): $(OLDEST_PINS) pyproject.toml
	rm -rf $(OLDEST_VENV)
	$(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/pip install -q -c $(OLDEST_PINS) -e '.[test]'
	@touch $@

test-oldest: setup oldest-setup
	@$(BIN)/python tests/parts.py oldest

# The main job: bring the whole virtual board up and watch the agent work.
# BOARD=remote-sim make run: the same on the remote-SIM board (docs/remote-sim.md).
run: setup
	$(BIN)/python -m board.virtual.lab.demo

# Every test. As root (CI) nothing is skipped; elsewhere root-only tests say why they skip.
# The suite runs in parts at once (tests/parts.py): the tests that need no lab, the lab
# tests in groups, each group on a lab of its own (its own namespaces and directory), since
# the lab tests mostly wait on the lab's clocks, the oldest-versions run (test-oldest,
# about 4 minutes, mostly waiting on brokers and namespaces), and the system test
# (tests/system: the .deb on a Debian 12 root booted with systemd, on its own lab; about 5
# minutes, mostly waiting on systemd's watchdog and restart timers, plus about a minute
# the first time to build the root image, cached in build/system). Each part's output is
# kept in build/test-<part>.log and printed when all have ended, with each part's wall time.
# The two venvs are built side by side (about 70 s and 50 s one after the other from a fresh
# clone, mostly waiting on downloads and wheel builds): issue 21's 10 minutes count them.
test: deps
	@$(MAKE) --no-print-directory -j2 setup oldest-setup
	@$(BIN)/python tests/parts.py

bench: setup
	$(BIN)/python tests/bench/run_all.py

# Issue 29: mutation testing (mutmut) of the pure modules that decide money, keys and swaps,
# each with its fast tests only; prints module | mutants | killed | survived | no tests | score.
# On demand, never part of make test (minutes per module). MODULES=agent/core/policy.py runs
# one; the list is tools/mutation.py's MODULES; docs/testing.md reads the table.
MUTATION_STAMP := $(VENV)/.installed-mutation
MODULES ?=

$(MUTATION_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install -q -e '.[test,mutation]'
	@touch $@

mutation: setup $(MUTATION_STAMP)
	$(BIN)/python tools/mutation.py $(MODULES)

# The Debian package and the OpenWrt .ipk, into build/packages (packaging/README.md).
package: deps
	$(PYTHON) packaging/build.py --out build/packages

# Issue 9: random faults under LAN traffic for SOAK_SECONDS (default 1200), root only.
# Issue 19: then the packaged agent under real systemd (the system test's container) with
# its modem flapping for SOAK_FLAP_SECONDS (default 900; about 20 minutes in all).
SOAK_SECONDS ?= 1200
SOAK_FLAP_SECONDS ?= 900
# Issue 22: then the flat 200 kbps SIM served for 10 minutes under load (make test serves it 2),
# on a lab of its own (prefix pwsf).
soak: setup
	SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/python tests/bench/soak.py
	SOAK_FLAP_SECONDS=$(SOAK_FLAP_SECONDS) $(BIN)/python tests/bench/soak_system.py
	POCKET_FLAT_SERVE_S=600 POCKET_LAB_PREFIX=pwsf POCKET_LAB_TEST_DIR=/run/pocket-lab-sf \
	  $(BIN)/python -m pytest -q -s tests/lab/test_lab_plans.py -k flat_200_kbps

lint: setup
	$(BIN)/ruff check agent board tests
	$(BIN)/mypy agent

clean:
	-$(BIN)/pocket-lab down 2>/dev/null
	rm -rf $(VENV) $(OLDEST_VENV) .pytest_cache .hypothesis build *.egg-info
