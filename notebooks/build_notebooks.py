"""Writes the tutorial notebooks from the cell sources below (committed without outputs;
tests/test_notebooks.py executes them top to bottom). Run: .venv/bin/python notebooks/build_notebooks.py"""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

QUICKSTART = [
    new_markdown_cell("# 1 · Quick start: detect landslides in a scene\n\n"
                      "Detect with the embedded default model, look at the result, open the GeoPackage with geopandas. "
                      "The scene is the synthetic sample the project generates itself; set `SCENE` to your own GeoTIFF "
                      "(for instance `../../shared/data/amunet/areaB_rgb.tif`)."),
    new_code_cell("from pathlib import Path\n"
                  "import geopandas as gpd\n"
                  "from IPython.display import Image, display\n"
                  "import landslide_wsss\n"
                  "from landslide_wsss import api\n"
                  "from landslide_wsss.sample import make_sample_scene\n"
                  "WORK = Path('work_quickstart'); WORK.mkdir(exist_ok=True)\n"
                  "SCENE, _ = make_sample_scene(WORK / 'sample.tif', size=512, overwrite=True)\n"
                  "landslide_wsss.__version__"),
    new_markdown_cell("`detect` tiles the scene, runs the classifier gate and the CAM (and the CycleGAN difference "
                      "for `*-cyclegan` methods), blends the tiles, thresholds per scene and vectorizes. It returns a "
                      "GeoDataFrame in the scene's CRS and writes the GeoPackage atomically."),
    new_code_cell("gdf = api.detect(SCENE, WORK / 'sample.gpkg', overwrite=True, preview=WORK / 'sample.png', min_area_m2=20)\n"
                  "print(len(gdf), 'polygons in', gdf.crs)\n"
                  "gdf.head()"),
    new_code_cell("display(Image(filename=str(WORK / 'sample.png')))"),
    new_markdown_cell("The GeoPackage is an ordinary vector layer: open it in QGIS, or with geopandas."),
    new_code_cell("layer = gpd.read_file(WORK / 'sample.gpkg', layer='landslides')\n"
                  "assert layer.crs == gdf.crs\n"
                  "layer[['area_m2', 'score_mean', 'score_max', 'method', 'model_version']].describe(include='all')"),
]

TRAINING = [
    new_markdown_cell("# 2 · Training on your own image-level labels\n\n"
                      "From a table of chips labelled *landslide* / *no landslide* to a model file that `detect` "
                      "uses. Here the chips are cut from the synthetic sample scene so the notebook runs anywhere "
                      "in a minute; with real data, point the table at your own chips (the same code trained the "
                      "embedded model on Bijie + AMU-Net, see `python -m landslide_wsss.training.default`)."),
    new_code_cell("from pathlib import Path\n"
                  "import numpy as np, pandas as pd, rasterio\n"
                  "import matplotlib.pyplot as plt\n"
                  "from landslide_wsss.sample import make_sample_scene\n"
                  "from landslide_wsss.datasets.common import ChipSet\n"
                  "WORK = Path('work_training'); WORK.mkdir(exist_ok=True)\n"
                  "scene, scars = make_sample_scene(WORK / 'scene.tif', size=512, seed=3, overwrite=True)\n"
                  "with rasterio.open(scene) as ds:\n"
                  "    rgb = ds.read()\n"
                  "# A label table, as a user would keep it: chip origin and image-level label.\n"
                  "rows = []\n"
                  "for r in range(0, 512 - 64 + 1, 32):\n"
                  "    for c in range(0, 512 - 64 + 1, 32):\n"
                  "        rows.append({'row': r, 'col': c, 'label': int(scars[r:r+64, c:c+64].mean() > 0.05)})\n"
                  "labels = pd.DataFrame(rows)\n"
                  "labels.label.value_counts()"),
    new_code_cell("chips = ChipSet(np.stack([rgb[:, r:r+64, c:c+64] for r, c in zip(labels.row, labels.col)]).astype(np.float32),\n"
                  "                labels.label.to_numpy().astype(np.float32))\n"
                  "from landslide_wsss.training.classifier import train_classifier\n"
                  "model, history = train_classifier(chips, {'arch': 'resnet18', 'width': 8, 'output_stride': 8},\n"
                  "                                  epochs=2, batch_size=32, seed=0, threads=2)\n"
                  "plt.plot([h.get('loss', np.nan) for h in history], marker='o'); plt.xlabel('epoch'); plt.ylabel('BCE loss');\n"
                  "plt.savefig(WORK / 'loss.png')"),
    new_markdown_cell("Save it as a model file: safetensors tensors plus a JSON metadata block (bands, "
                      "normalization, tile size, CAM layer, thresholds, training data). Nothing is pickled."),
    new_code_cell("from landslide_wsss.checkpoint import save_checkpoint, read_metadata\n"
                  "from landslide_wsss.wsss import DEFAULT_PARAMS, classifier_metadata\n"
                  "meta = classifier_metadata(model, tile=64, training={'data': 'sample scene chips', 'epochs': 2},\n"
                  "                           params=dict(DEFAULT_PARAMS, method='gradcam'))\n"
                  "save_checkpoint(WORK / 'my_model.safetensors', {f'classifier.{k}': v for k, v in model.state_dict().items()}, meta)\n"
                  "{k: read_metadata(WORK / 'my_model.safetensors')[k] for k in ('architecture', 'in_bands', 'tile_size', 'method_default')}"),
    new_code_cell("from landslide_wsss import api\n"
                  "gdf = api.detect(scene, WORK / 'mine.gpkg', model=WORK / 'my_model.safetensors', overwrite=True,\n"
                  "                 preview=WORK / 'mine.png', min_area_m2=20)\n"
                  "from IPython.display import Image; Image(filename=str(WORK / 'mine.png'))"),
]

EVALUATION = [
    new_markdown_cell("# 3 · Evaluation and ablation on the shared data\n\n"
                      "Landslide IoU / F1 / precision / recall (landslide class, pixel counts over the whole split) "
                      "for the weak methods on a few Bijie validation images, and a precision/recall-vs-threshold "
                      "plot. The full figures are in the README (`landslide-wsss evaluate ...`). Skips cleanly "
                      "where the data folder (`../../shared/data`, or `$LANDSLIDE_WSSS_DATA`) is absent."),
    new_code_cell("from pathlib import Path\n"
                  "import json\n"
                  "import numpy as np, pandas as pd\n"
                  "import matplotlib.pyplot as plt\n"
                  "from landslide_wsss.paths import DATA_DIR as DATA  # ../../shared/data, or $LANDSLIDE_WSSS_DATA\n"
                  "HAVE_DATA = (DATA / 'bijie' / 'val.txt').is_file()\n"
                  "LIMIT = 12  # images of val.txt used here; the README figures use all 208\n"
                  "HAVE_DATA"),
    new_code_cell("from landslide_wsss.evaluation import evaluate_bijie\n"
                  "rows = []\n"
                  "if HAVE_DATA:\n"
                  "    for method in ['cam', 'gradcam', 'scorecam']:\n"
                  "        rows.append(evaluate_bijie(DATA / 'bijie', DATA / 'bijie' / 'val.txt', method=method, limit=LIMIT, device='cpu'))\n"
                  "table = pd.DataFrame(rows)\n"
                  "table[[c for c in ['method', 'iou', 'f1', 'precision', 'recall', 'miou', 'seconds'] if c in table]] if len(table) else 'no shared data here'"),
    new_code_cell("from landslide_wsss.wsss import load_model\n"
                  "from landslide_wsss.evaluation import bijie_maps\n"
                  "from landslide_wsss.datasets.bijie import read_split\n"
                  "if HAVE_DATA:\n"
                  "    model = load_model(None, method='gradcam', device='cpu')\n"
                  "    names = read_split(DATA / 'bijie' / 'val.txt')[:LIMIT]\n"
                  "    ths = np.linspace(0.05, 0.95, 19)\n"
                  "    tp = np.zeros_like(ths); fp = np.zeros_like(ths); fn = np.zeros_like(ths)\n"
                  "    for name, maps, mask in bijie_maps(model, DATA / 'bijie', names):\n"
                  "        cam = maps['cam'] / (maps['cam'].max() + 1e-6)\n"
                  "        ref = mask == 1\n"
                  "        for i, t in enumerate(ths):\n"
                  "            pred = cam > t\n"
                  "            tp[i] += (pred & ref).sum(); fp[i] += (pred & ~ref).sum(); fn[i] += (~pred & ref).sum()\n"
                  "    prec, rec = tp / np.maximum(tp + fp, 1), tp / np.maximum(tp + fn, 1)\n"
                  "    plt.plot(ths, prec, label='precision'); plt.plot(ths, rec, label='recall')\n"
                  "    plt.plot(ths, tp / np.maximum(tp + fp + fn, 1), label='IoU'); plt.xlabel('CAM threshold (per-image max)')\n"
                  "    plt.legend(); plt.title('Grad-CAM on %d Bijie val images' % len(names))"),
    new_code_cell("ablation = Path('..') / 'runs' / 'ablation.json'\n"
                  "pd.DataFrame(json.loads(ablation.read_text())) if ablation.is_file() else 'run the ablation commands of the README to fill this'"),
]

YOUR_REGION = [
    new_markdown_cell("# 4 · Your region from weak labels: label grid → tick → train → detect\n\n"
                      "The whole path a geologist takes: a tile grid of the scene to tick in QGIS (here the ticks come "
                      "from the synthetic scene's known scars, as a person would tick them by eye), `train weak` on those "
                      "image-level labels, then `detect` with the new model. The same runs from the CLI "
                      "(`landslide-wsss labels grid`, `landslide-wsss train weak`) and from QGIS (Processing "
                      "`landslide_wsss:label_grid`, `landslide_wsss:train`). The budget here is tiny so the notebook "
                      "runs anywhere; give `minutes=30` for a real region."),
    new_code_cell("from pathlib import Path\n"
                  "import numpy as np, rasterio\n"
                  "from rasterio.features import geometry_mask\n"
                  "from landslide_wsss import api\n"
                  "from landslide_wsss.labels import label_grid\n"
                  "from landslide_wsss.training.weak import train_weak\n"
                  "from landslide_wsss.sample import make_sample_scene\n"
                  "WORK = Path('work_region'); WORK.mkdir(exist_ok=True)\n"
                  "scene, scars = make_sample_scene(WORK / 'scene.tif', size=512, seed=5, overwrite=True)\n"
                  "grid = label_grid([scene], WORK / 'grid.gpkg', tile_m=64, overwrite=True)\n"
                  "print(len(grid), 'tiles to tick;', grid.label.isna().all() and 'all empty')"),
    new_markdown_cell("Tick: 1 where a tile shows a scar, 0 where it clearly shows none; leave the rest empty "
                      "(not looked at). In QGIS this is clicking in the attribute table of the styled grid layer."),
    new_code_cell("with rasterio.open(scene) as ds:\n"
                  "    transform, shape = ds.transform, (ds.height, ds.width)\n"
                  "share = [float(scars[~geometry_mask([g], shape, transform)].mean()) for g in grid.geometry]\n"
                  "grid['label'] = [1 if s > 0.02 else (0 if s == 0 else None) for s in share]\n"
                  "grid.to_file(WORK / 'ticked.gpkg', layer='label_grid')\n"
                  "grid.label.value_counts(dropna=False)"),
    new_code_cell("summary = train_weak([scene], WORK / 'ticked.gpkg', WORK / 'region.safetensors', minutes=0.5,\n"
                  "                     overwrite=True, progress=False)\n"
                  "{k: summary[k] for k in ('landslide_tiles', 'free_tiles', 'held_out_tiles', 'seconds',\n"
                  "                               'holdout_start_model', 'holdout_fine_tuned', 'fine_tuned_student_kept')}"),
    new_code_cell("gdf = api.detect(scene, WORK / 'region.gpkg', model=WORK / 'region.safetensors', overwrite=True,\n"
                  "                 preview=WORK / 'region.png', min_area_m2=20)\n"
                  "print(len(gdf), 'polygons;', gdf.method.unique())\n"
                  "from IPython.display import Image; Image(filename=str(WORK / 'region.png'))"),
]


def main():
    for name, cells in [("01_quickstart.ipynb", QUICKSTART), ("02_training_your_labels.ipynb", TRAINING),
                        ("03_evaluation_ablation.ipynb", EVALUATION), ("04_your_region.ipynb", YOUR_REGION)]:
        nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                "language": "python"}})
        nbformat.write(nb, HERE / name)
        print(HERE / name)


if __name__ == "__main__":
    main()
