#!/usr/bin/env bash
# The GPU path, proven on a machine with CUDA (run from the repository root after `make setup`):
# detect and evaluate on --device cuda and --device cpu for the same scene, polygons compared;
# one short student training on CUDA; throughput printed and written to $OUT/gpu_check.json.
# Only the student trainer and inference run on CUDA; the classifier/CycleGAN/refinement trainers are CPU-only.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
"$PY" -m landslide_wsss.cli sample-scene "$OUT/scene.tif" --size 3072 --overwrite
for dev in cpu cuda; do
  start=$(date +%s.%N)
  "$PY" -m landslide_wsss.cli detect "$OUT/scene.tif" -o "$OUT/$dev.gpkg" --device "$dev" --overwrite --quiet
  echo "$dev $(echo "$(date +%s.%N) - $start" | bc)" >> "$OUT/times.txt"
done
if [ -d ../shared/data/amunet ]; then
  for dev in cpu cuda; do
    "$PY" -m landslide_wsss.cli evaluate scene --image ../shared/data/amunet/areaB_rgb.tif \
      --mask ../shared/data/amunet/areaB_mask.tif --device "$dev" --json > "$OUT/eval_$dev.json"
  done
fi
"$PY" - "$OUT" <<'PY'
import json, sys, time
from pathlib import Path
import geopandas as gpd, numpy as np, torch
from landslide_wsss.models.student import StudentNet
from landslide_wsss.training import student as st
out = Path(sys.argv[1])
a, b = (gpd.read_file(out / f"{d}.gpkg").geometry.union_all() for d in ("cpu", "cuda"))
agree = a.intersection(b).area / max(a.union(b).area, 1e-9)
rng = np.random.default_rng(0)
samples = [st.Sample(rng.integers(0, 255, (3, 256, 256), dtype=np.uint8), (rng.random((256, 256)) > 0.8).astype(np.uint8),
                     f"s{i}", True) for i in range(16)]
net = StudentNet(mean=[128.0] * 3, std=[64.0] * 3).cuda()
t0 = time.time()
st.fit_student(samples, net, 0, steps=100, progress=False)
torch.cuda.synchronize()
times = dict(line.split() for line in (out / "times.txt").read_text().splitlines())
res = {"polygons_iou_cpu_vs_cuda": round(agree, 5), "detect_seconds": times,
       "student_train_steps_per_s_cuda": round(100 / (time.time() - t0), 2),
       "evaluate": {d: json.loads((out / f"eval_{d}.json").read_text()) for d in ("cpu", "cuda")
                    if (out / f"eval_{d}.json").is_file()}}
(out / "gpu_check.json").write_text(json.dumps(res, indent=1))
print(json.dumps(res, indent=1))
assert agree > 0.98, "CPU and CUDA polygons disagree"
PY
