"""The mask threshold and hysteresis gate of the segmentation networks in the model file, by the
rule in student.choose_gate on the `evaluate` path's hold-out figures; each network's maps are
computed once per hold-out tile (`cache_maps`), only the fuse step changes between settings."""
from __future__ import annotations

import numpy as np

from .. import holdout
from .. import student as st
from .workdir import WorkDir


def cache_maps(scorer):
    """The scorer with its network maps memoized per tile batch: the gate rule re-runs the same
    hold-out tiles for every (low, high) and only the fuse step changes."""
    import hashlib
    cache, run = {}, scorer.predict_tiles

    def predict_tiles(tiles, valid, terrain=None):
        t, v = np.ascontiguousarray(tiles), np.ascontiguousarray(valid)
        h = hashlib.blake2b(digest_size=16)
        for a in (t, v):
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
        key = h.hexdigest()
        if key not in cache:
            cache[key] = run(tiles, valid, terrain)
        return {k: m.copy() for k, m in cache[key].items()}
    scorer.predict_tiles = predict_tiles
    return scorer


def gate(data, out, wd: WorkDir, seed=0, log=print, prefixes=("student", "unet")) -> dict:
    """Writes threshold, gate_high and the table into each component's metadata; starts from the
    component's plain threshold."""
    from ...checkpoint import read_metadata, update_model_file
    from ...wsss import load_model
    measure = holdout.evaluate_path(data, wd.holdout_split, wd.strip_mask, seed)
    done = {}
    for prefix in prefixes:
        comp = read_metadata(out).get(prefix)
        if not comp or "config" not in comp:
            continue
        scorer = cache_maps(load_model(out, method="student" if prefix == "student" else "unet", device="cpu"))
        plain = float(comp.get("gate", {}).get("plain", {}).get("low", comp["threshold"]))

        def score(low, high, scorer=scorer, prefix=prefix):
            scorer.threshold, scorer.gate_high = low, high
            r = {"low": low, "high": high, **measure(scorer)}
            log(event="gate", component=prefix, **r)
            return r
        chosen = st.choose_gate(score, plain)

        def put(meta, prefix=prefix, chosen=chosen):
            meta[prefix].update(threshold=chosen["chosen"]["low"], gate_high=chosen["chosen"]["high"], gate=chosen)
        update_model_file(out, meta=put)
        done[prefix] = chosen
    return done
