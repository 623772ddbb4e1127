# One virtual environment at .venv/, built from setup.cfg + constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-core test-qgis bench plugin-zip train-default evaluate clean

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Main job: detection with the embedded default model on a sample scene the project generates itself.
demo: setup
	$(BIN)/landslide-wsss sample-scene demo/sample_scene.tif --overwrite
	$(BIN)/landslide-wsss detect demo/sample_scene.tif -o demo/sample_scene.gpkg --preview demo/sample_scene.png --overwrite

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build dist *.egg-info
