# One virtual environment at .venv/, built from setup.cfg + constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-core test-qgis setup-qgis bench bench-quick plugin-zip dist train-default evaluate clean

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Main job: detection with the embedded default model on a sample scene the project generates itself.
demo: setup
	mkdir -p demo
	$(BIN)/landslide-wsss sample-scene demo/sample_scene.tif --overwrite
	$(BIN)/landslide-wsss detect demo/sample_scene.tif -o demo/sample_scene.gpkg --preview demo/sample_scene.png --overwrite

# Core tests, then the real-QGIS tests (they skip with a message where QGIS is not installed;
# `make setup-qgis` installs it, as CI does).
test: setup
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory test-qgis

clean:
	rm -rf $(VENV) build dist *.egg-info

# --- QGIS plugin ------------------------------------------------------------------------------------
# plugin-zip: dist/landslide_wsss_plugin-VERSION.zip (qgis_plugin/ + metadata.txt + LICENSE); stdlib only.
# setup-qgis: Debian's QGIS 3.22 via apt (if missing) + .venv-qgis (/usr/bin/python3, system site packages,
#             pytest-qgis 5.0.2, constraints-qgis.txt).
# test-qgis:  the real-QGIS tests in tests/qgis (own pytest.ini; never collected by `make test`); they run
#             the detector through the project's .venv, and the plugin's own install from `make dist`'s
#             zip (requirements from the package index). Skips (exit 0) where QGIS is not installed.
VENV_QGIS := .venv-qgis
QGIS_SYS_PYTHON := /usr/bin/python3

plugin-zip:
	$(PYTHON) scripts/build_plugin_zip.py

# dist: dist/landslide_wsss-VERSION-py3-none-any.whl (the embedded model files in landslide_wsss/weights/
# included) and the plugin zip for other machines, carrying that wheel (the plugin installs its own
# environment from it, the requirements from the package index) and no path to this checkout.
# Needs only a Python with pip (setuptools comes from the package index); build/ goes first: setuptools
# would copy files deleted since the last build into the wheel.
dist:
	rm -rf build dist/landslide_wsss-*.whl
	$(PYTHON) -m pip wheel -q --no-deps -w dist .
	$(PYTHON) scripts/build_plugin_zip.py --portable --wheel "$$(ls dist/landslide_wsss-*.whl)"

setup-qgis:
	scripts/install_qgis.sh

test-qgis: setup dist
	@if ! $(QGIS_SYS_PYTHON) -c "import qgis.core" >/dev/null 2>&1; then \
		echo "test-qgis SKIPPED: QGIS is not installed here (make setup-qgis installs it)"; exit 0; fi; \
	test -x $(VENV_QGIS)/bin/python || SKIP_APT=1 scripts/install_qgis.sh; \
	QT_QPA_PLATFORM=offscreen $(VENV_QGIS)/bin/python -m pytest -c tests/qgis/pytest.ini \
		--rootdir=tests/qgis --confcutdir=tests/qgis tests/qgis

# --- benchmarks (figures, never timed asserts) --------------------------------------------------------
# bench: Score-CAM vs grad-cam/torchcam, whole detect (AMU-Net area B + synthetic 10k²/20k²), Bijie val
# evaluation; prints tables, writes benchmarks/results/*.json (+ .md). BENCH_ARGS/BENCH_DEVICE to adjust,
# e.g. `make bench BENCH_DEVICE=cuda`; `make bench-quick` is a few-minute smoke run.
BENCH_DEVICE ?= auto
BENCH_SCORECAM_ARGS ?= --tiles 8 --ref-tiles 2 --repeat 3 --eval-limit 60
BENCH_DETECT_ARGS ?= --scenes areaB,10k,20k
BENCH_EVALUATE_ARGS ?=

bench: setup
	$(BIN)/python benchmarks/bench_scorecam.py --device $(BENCH_DEVICE) $(BENCH_SCORECAM_ARGS)
	$(BIN)/python benchmarks/bench_detect.py --device $(BENCH_DEVICE) $(BENCH_DETECT_ARGS)
	$(BIN)/python benchmarks/bench_evaluate.py --device $(BENCH_DEVICE) $(BENCH_EVALUATE_ARGS)
	$(BIN)/python benchmarks/report.py

bench-quick: setup
	$(BIN)/python benchmarks/bench_scorecam.py --device $(BENCH_DEVICE) --tiles 2 --ref-tiles 1 --repeat 1 --eval-limit 6
	$(BIN)/python benchmarks/bench_detect.py --device $(BENCH_DEVICE) --scenes areaB
	$(BIN)/python benchmarks/bench_evaluate.py --device $(BENCH_DEVICE) --limit 20
	$(BIN)/python benchmarks/report.py
