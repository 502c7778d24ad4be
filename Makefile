# Two commands do everything on a fresh machine:
#   make demo   - install (system packages, venv, torch 2.13.0 CPU first, singer) and make a cover offline
#   make test   - install and run the test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Pitch trackers whose metadata pulls torchaudio (no working CPU build for torch 2.13), and rvc-python, the RVC
# reference the tests compare against (its package __init__ needs fairseq; tests load its files by path).
RVC_NO_DEPS := torchfcpe==0.0.4 torchcrepe==0.0.24 rvc-python==0.1.5
# UVR separation through audio-separator, without its onnx2torch -> torchvision dependency (no CPU build of
# torchvision works with torch 2.13 here); its real imports are in pyproject.toml.
AUDIO_SEPARATOR := audio-separator==0.47.1
DEMO_OUT ?= out

.PHONY: install demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt scripts/install-system.sh
	bash scripts/install-system.sh
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0            # first, so nothing pulls a CUDA build
	$(BIN)/pip install -q -c constraints.txt -e ".[test]"
	$(BIN)/pip install -q --no-deps $(RVC_NO_DEPS) $(AUDIO_SEPARATOR)
	touch $@

demo: install
	$(BIN)/singer cover singer/data/demo/demo_song.mp3 --voice ayana --key 0 --out $(DEMO_OUT)/
	@echo "cover written under $(DEMO_OUT)/; its HTML report: $(BIN)/singer report $(DEMO_OUT)/*.mp3 --open"

test: install
	bash scripts/install-system.sh --test   # + chromium for the report tests
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check singer tests benchmarks
	$(BIN)/ruff format --check singer tests benchmarks
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/bench_cover.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
