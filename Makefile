# The whole pipeline: `make` (compile -> train -> compare) and `make test`.
# `make mugpt` trains MU-GPT (a language model on theorems only) into artifacts/<program>/mugpt/.
# Every target installs what it needs into .venv on first use.
#
# Variables: PROGRAM (miu), MAX_LEN (the program's default), DEVICE (auto),
#            SEEDS ("0 1": two seeds give the seed-vs-seed ceiling), LEARNED (checkpoint folder(s) for compare), TRAIN_ARGS (extra
#            `python -m learned` flags, e.g. "--train-max-len 6"), HYPOTHESES (candidate programs of the
#            same task to rank against each learned model, e.g. "miu miu_mean miu_first"; "auto": every candidate
#            derived from the task's automaton, e.g. PROGRAM=tomita5 HYPOTHESES=auto), ARTIFACTS, REPORTS.
# `make benchmark` (the sweep on Ray): LANGUAGES (all), OBJECTIVES (all), SEEDS, SHAPES ("gpt2:2x2x64 ..."),
#            EXTERNAL (manifest.json), STEPS, MAX_LEN, LR (peak learning rate), WORKERS (local CPUs),
#            DYNAMICS (a language, or none);
#            RAY_ADDRESS=host:port runs it on a cluster (ARTIFACTS and REPORTS on a shared folder).

PYTHON    ?= python3.11
VENV      ?= .venv
PROGRAM   ?= miu
MAX_LEN   ?=
DEVICE    ?= auto
SEEDS     ?= 0 1
LEARNED   ?=
TRAIN_ARGS ?=
HYPOTHESES ?=
BENCH_HYPOTHESES ?= miu miu_mean miu_first
LANGUAGES ?=
OBJECTIVES ?=
SHAPES    ?=
EXTERNAL  ?=
STEPS     ?= 2000
LR        ?=
WORKERS   ?=
DYNAMICS  ?=
ARTIFACTS ?= artifacts
REPORTS   ?= reports

PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# Shell: $$hyps = HYPOTHESES, with "auto" expanded to the derived candidates (one-line error for a task without automaton).
HYPS  := hyps="$(HYPOTHESES)"; if [ "$$hyps" = auto ]; then hyps=$$($(PY) -m rasp_programs candidates $(PROGRAM)) || exit 2; fi

.PHONY: all compile compile-candidates train mugpt compare dynamics benchmark bench bench-languages test test-slow clean import

# Stages run in order; each one alone reads the previous stage's artifacts.
all: $(STAMP)
	$(MAKE) --no-print-directory compile
	$(MAKE) --no-print-directory train
	$(MAKE) --no-print-directory compare

# The pipeline's own dependencies; the test-only extras (pytest, transformers, transformer-lens) come with
# `make test` ($(TEST_STAMP)), so `make` does not wait for them.
$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q torch==2.13.0
	$(VENV)/bin/python -m pip install -q -e .
	@touch $@

$(TEST_STAMP): $(STAMP)
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	@touch $@

compile: $(STAMP)
	$(PY) -m compiled --program $(PROGRAM) --max-len "$(MAX_LEN)" --artifacts $(ARTIFACTS)

train: $(STAMP)
	$(PY) -m learned --program $(PROGRAM) --device $(DEVICE) --seeds "$(SEEDS)" --artifacts $(ARTIFACTS) $(TRAIN_ARGS)

# MU-GPT: train the language model on theorems only, then compare it (through its declared readout).
mugpt: $(STAMP)
	$(PY) -m learned --objective lm --program $(PROGRAM) --device $(DEVICE) --seeds "$(SEEDS)" --artifacts $(ARTIFACTS) $(TRAIN_ARGS)
	$(PY) -m compare --program $(PROGRAM) --artifacts $(ARTIFACTS) --reports $(REPORTS) --seeds "$(SEEDS)" \
		--runs mugpt --out $(REPORTS)/$(PROGRAM)/mugpt

# Import a Hugging Face GPT-2 folder (config.json + model.safetensors) as an artifact, e.g.
# make import HF=./tomita5-model OUT=artifacts/ext/t5 ARGS='--vocab "0 1 <bos> <eos> <pad>" --bos "<bos>" --end "<eos>" --pad "<pad>"'
import: $(STAMP)
	@test -n "$(HF)" -a -n "$(OUT)" || { echo "error: give HF=FOLDER OUT=DIR (and ARGS=...)" >&2; exit 2; }
	$(PY) -m learned.hf "$(HF)" --out "$(OUT)" $(ARGS)

# With HYPOTHESES, candidates without a compiled artifact are compiled first.
compare: $(STAMP) compile-candidates
	$(PY) -m compare --program $(PROGRAM) --artifacts $(ARTIFACTS) --reports $(REPORTS) --seeds "$(SEEDS)" \
		$(if $(LEARNED),--learned $(LEARNED)) $(if $(HYPOTHESES),--hypotheses $(HYPOTHESES))

compile-candidates: $(STAMP)
	@$(HYPS); for p in $${hyps:+$(PROGRAM)} $$hyps; do test -f $(ARTIFACTS)/$$p/compiled/model.json || \
		$(PY) -m compiled --program $$p --max-len "$(MAX_LEN)" --artifacts $(ARTIFACTS) || exit 1; done

dynamics: $(STAMP) compile-candidates
	@$(HYPS); set -x; $(PY) -m compare.dynamics --program $(PROGRAM) --artifacts $(ARTIFACTS) --reports $(REPORTS) \
		--seeds "$(SEEDS)" $(if $(RUNS),--runs $(RUNS)) $${hyps:+--hypotheses $$hyps}

# The sweep: every (language, objective, shape, seed) job a Ray task; tables in $(REPORTS)/benchmark/.
benchmark: $(STAMP)
	$(PY) -m benchmark --languages "$(LANGUAGES)" --objectives "$(OBJECTIVES)" --seeds "$(SEEDS)" \
		--shapes "$(SHAPES)" --external "$(EXTERNAL)" --steps "$(STEPS)" --max-len "$(or $(MAX_LEN),0)" \
		--lr "$(or $(LR),0)" --workers "$(WORKERS)" --dynamics "$(DYNAMICS)" --device $(DEVICE) --artifacts $(ARTIFACTS) --reports $(REPORTS)

# Speed targets live here as ratios and wall times, never in unit tests.
bench: $(TEST_STAMP)
	$(PY) -m compiled.bench --program $(PROGRAM) --artifacts $(ARTIFACTS)
	$(PY) -m learned.bench --program $(PROGRAM) --device $(DEVICE) --artifacts $(ARTIFACTS)
	$(PY) -m learned.bench_mugpt --program $(PROGRAM) --device $(DEVICE) --artifacts $(ARTIFACTS)
	$(PY) -m learned.bench_hf
	$(PY) -m compare.bench --program $(PROGRAM) --artifacts $(ARTIFACTS) --reports $(REPORTS)
	$(PY) -m compare.bench --program $(PROGRAM) --artifacts $(ARTIFACTS) --reports $(REPORTS) --fast
	$(MAKE) --no-print-directory compile-candidates HYPOTHESES="$(BENCH_HYPOTHESES)"
	$(PY) -m compare.bench --program $(PROGRAM) --artifacts $(ARTIFACTS) --reports $(REPORTS) \
		--hypotheses $(BENCH_HYPOTHESES)
	$(PY) -m benchmark.bench --out $(REPORTS)/benchmark-bench

# Time to 100% per registered language (or LANGUAGES), median of BENCH_SEEDS; compiles what is missing.
BENCH_SEEDS ?= 0 1 2
bench-languages: $(STAMP)
	@langs="$(LANGUAGES)"; test -n "$$langs" || langs=$$($(PY) -c "from rasp_programs.automata import LANGUAGES; \
		print(' '.join(d.name for d in LANGUAGES))"); for l in $$langs; do \
		test -f $(ARTIFACTS)/$$l/compiled/model.json || $(PY) -m compiled --program $$l --artifacts $(ARTIFACTS) || exit 1; \
		$(PY) -m learned.bench --program $$l --device $(DEVICE) --artifacts $(ARTIFACTS) --seeds "$(BENCH_SEEDS)" || exit 1; done

# One test file per worker (--dist loadfile): a file's session fixtures are built once. The 15 slowest are listed,
# to keep the suite's time in view.
test: $(TEST_STAMP)
	$(PY) -m pytest -q -m "not slow" -n auto --dist loadfile --durations=15

test-slow: $(TEST_STAMP)
	$(PY) -m pytest -q -m slow -n auto --dist loadfile

clean:
	rm -rf $(ARTIFACTS) $(REPORTS)
