# The two commands: `make demo` runs the main job, `make test` passes the tests.
# Both set up what they need (virtual env, dependencies, DynamoDB Local) idempotently.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp
DDB_STAMP := .cache/dynamodb-local/.stamp
export STATELESS_STATE_DYNAMODB_LOCAL_DIR := $(CURDIR)/.cache/dynamodb-local

.PHONY: setup venv test lint docs demo bench torture simulate mutants races package layer clean check-dist

setup: $(STAMP) $(DDB_STAMP)

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

$(DDB_STAMP): $(STAMP) stateless_state/testing/dynamodb_local.py
	$(PY) -m stateless_state.testing install
	touch $@

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The documentation site (mkdocs.yml, docs/), built into site/ offline, --strict: a broken link
# or anchor, a page outside the nav or a docstring griffe cannot parse fails. About 5 s.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

# Two pytest workers (pytest-xdist), each a session of its own (its own DynamoDB Local and
# PostgreSQL): the suite waits on engines and subprocesses, and alone it used 1.1 of 2 cores.
test: setup lint docs check-dist
	$(VENV)/bin/pytest -q -n 2

# The distribution as a user gets it (tools/check_dist.py): the sdist and the wheel built and
# checked by twine --strict, the wheel with its testing extra in a clean virtual env, the shipped
# handler and a user's tests with the pytest plugin run from it. About a minute; CI runs it.
check-dist: setup
	$(PY) -m tools.check_dist

demo: setup
	$(PY) -m examples.s3_redshift_batcher.demo $(ARGS)

clean:
	rm -rf $(VENV) .cache dist site .mypy_cache .ruff_cache .pytest_cache .hypothesis

bench: setup
	$(PY) -m benchmarks.run

# A longer crash-torture run of the demo: workers SIGKILLed at random and at every crash point,
# objects rewritten, deleted after their arrival (and some written again), hostile keys near
# S3's 1,024-byte limit; every object version loaded exactly once or reported superseded.
torture: setup
	$(PY) -m examples.s3_redshift_batcher.demo --objects 1000 --workers 4 --count 40 \
		--chaos --kill-every 0.5 --crash-points 0.05 --rewrites 0.1 --deletions 0.1 \
		--long-keys 0.1

# Every simulation scenario under its full bounds (exhaustive where the space is small enough),
# with the number of schedules each explored; see tests/support/simulations.py.
simulate: setup
	$(PY) -m tools.simulate $(ARGS)

# Each planted bug of tools/mutants.py, in a temporary copy of the source: the simulation's
# scenarios against the real-thread race tests on the same mutant; writes benchmarks/MUTANTS.md.
mutants: setup
	$(PY) -m tools.mutants --races --markdown benchmarks/MUTANTS.md $(ARGS)

# Every real-concurrency test on DynamoDB Local, the slow process races CI leaves to the
# simulation included.
races: setup
	$(VENV)/bin/pytest -q -m "race or faults or slow" $(ARGS)

# The deployable artifacts, without boto3 and botocore (the Lambda runtime has them): the
# example's function code, the same files `sam build` puts in each function's build folder, and
# a Lambda layer of the library (tools/lambda_artifact.py; sizes in benchmarks/RESULTS.md).
package: $(STAMP)
	$(PY) -m tools.lambda_artifact function examples/s3_redshift_batcher/handler.py \
		--zip dist/s3-redshift-batcher.zip

layer: $(STAMP)
	$(PY) -m tools.lambda_artifact layer --zip dist/stateless-state-layer.zip
