# ctiwatch: `make run` and `make test` are the only commands a new user needs.
# Python 3.11+: python3.11 when the machine has it, else python3.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config/ctiwatch.yaml
CORE := sla classifier incidents alerting pipeline probes ctiwatch

.PHONY: install run test lint fmt typecheck unit system-deps services bench bench-deps soak mqtt-secure mqtt-secure-compose clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# System tools the tests use, from Debian's packages when missing.
system-deps:
	@missing=""; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# PostgreSQL and Mosquitto run on every machine; start them if they are down.
services:
	@bash scripts/services.sh

# The demo keeps its SQLite file in var/ (config/ctiwatch.yaml: sqlite+aiosqlite:///var/ctiwatch.db).
run: $(STAMP)
	@mkdir -p var
	$(BIN)/ctiwatch run --config $(CONFIG)

# lint-imports: the import-linter contracts of pyproject.toml ([tool.importlinter]).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo

# Fix what lint complains about: format, then the auto-fixable lint findings.
fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy --strict $(CORE)

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit tests/contracts

test: $(STAMP) system-deps services lint typecheck
	docker-compose -f docker-compose.yml config -q
	MQTT_PASSWORD=x MQTT_AGENT_PASSWORD=x docker-compose -f docker-compose.yml -f docker-compose.secure.yml config -q
	$(BIN)/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python -m bench

# The soak (not part of `make test` nor `make bench`): 10,000 targets, 24 simulated hours of
# mixed faults, then 10 real minutes with the web under load; exits 1 when a goal is missed.
# SOAK_ARGS="--hours 4 --minutes 2" for a shorter run, "--pg" for PostgreSQL (see --help).
SOAK_ARGS ?=
soak: $(STAMP) services
	$(BIN)/python -m bench.bench_soak $(SOAK_ARGS)

# For `bench probes`' side-by-side figures and `bench web`'s load generator (each skips
# without them).
bench-deps:
	@command -v prometheus-blackbox-exporter >/dev/null 2>&1 || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-blackbox-exporter >/dev/null; }
	@command -v wrk >/dev/null 2>&1 || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

# TEST MATERIAL for docker/mosquitto-secure.conf in var/mqtt/: a CA, a server certificate for
# localhost and 127.0.0.1, and a password file with the logins ctiwatch and agent-globex-utr
# (random passwords, printed once). Never for production.
mqtt-secure:
	bash scripts/mqtt-secure.sh var/mqtt ctiwatch agent-globex-utr

# TEST MATERIAL for docker-compose.secure.yml in var/mqtt-compose/: a CA, a server certificate for
# the compose service name `mosquitto`, the logins ctiwatch and agent-rtm (random passwords,
# printed once: export them as MQTT_PASSWORD and MQTT_AGENT_PASSWORD). The broker in the
# container runs as uid 1883 (the image's "mosquitto"): it is given its key and password file.
mqtt-secure-compose:
	bash scripts/mqtt-secure.sh var/mqtt-compose --host mosquitto --host localhost --host 127.0.0.1 ctiwatch agent-rtm
	@chown 1883:1883 var/mqtt-compose/server.key var/mqtt-compose/passwd 2>/dev/null || \
	  echo "run: sudo chown 1883:1883 var/mqtt-compose/server.key var/mqtt-compose/passwd"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis var ctiwatch.db*
