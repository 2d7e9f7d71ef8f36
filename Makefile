# The two set-up commands of the README, and a few conveniences. Each target creates or reuses
# the virtual environment in .venv by itself (scripts/setup_env.sh).

VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
CORES ?= 2

.PHONY: env demo test test-fast coverage system-deps demo-corpus lint clean rehearsal

env:
	scripts/setup_env.sh

# Every job of the tiny demo is mostly NeMo's import and single-threaded work: a demo trial trains
# in the same wall time on one thread as on two (53.7 s against 53.6 s for V1, this 2-core
# machine), and the demo's sources prepare in seconds: one thread each lets two jobs share the two
# cores (a job of two threads would wait for both, with one of them idle).
DEMO_THREADS := prepare_quran_ayah_corpus=1 prepare_retasy=1 train_trial=1 average_checkpoints=1 benchmark_model=1 \
	export_model=1 benchmark_export=1 benchmark_longform=1

demo: env
	snakemake --cores $(CORES) --configfile config/demo.yaml --set-threads $(DEMO_THREADS)

# The full suite, the one CI runs (.ci/run).
test: env system-deps
	python -m pytest

# The fast tier, for the edit-test loop: the tests that run no Snakemake, no training and no Slurm.
test-fast: env
	python -m pytest -m "not slow"

# The full suite's line coverage of src/ (the processes it starts included), then its report.
coverage: env system-deps
	rm -rf .coverage-data
	coverage run -m pytest
	coverage combine -q
	coverage report

# The whole workflow at real size (a 114.6M-parameter stand-in for NVIDIA's model, random weights)
# on the demo data, in rehearsal/; ends with each stage's wall time and peak memory.
rehearsal: env
	test -f rehearsal/replica_base.nemo || python scripts/make_replica_base.py --out rehearsal/replica_base.nemo
	snakemake --cores $(CORES) --directory rehearsal --configfile config/rehearsal.yaml
	python scripts/rehearsal_table.py rehearsal --output rehearsal/stages.md

system-deps:
	scripts/install_system_deps.sh

demo-corpus: env system-deps
	python scripts/make_demo_corpus.py --out demo

lint: env
	snakemake --lint --configfile config/demo.yaml
	snakemake --lint

clean:
	rm -rf results logs benchmarks .snakemake rehearsal
