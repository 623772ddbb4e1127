"""Would one more hard-negative round have been kept? From a rebuild's work directory, the student
as its last kept hard-negative round left it (that round's fp32 training state), one more round
as the rule would run it (the same mining, steps, lr and seed scheme), measured on the rebuild's
hold-out (holdout.score). Hold-out only: neither val nor area B is read.

    python benchmarks/hard_negative_round.py WORK [--data ../shared/data] [--seed 0]

Writes benchmarks/results/hard_negative_round.json."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import save  # noqa: E402
from landslide_wsss.paths import DATA_DIR  # noqa: E402


def main(argv=None) -> int:
    from landslide_wsss.checkpoint import load_checkpoint
    from landslide_wsss.training import holdout
    from landslide_wsss.training.common import set_threads
    from landslide_wsss.training.rebuild.networks import new_student
    from landslide_wsss.training.rebuild.teacher import load_samples, weights
    from landslide_wsss.training.selftrain import hard_negatives

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", help="the rebuild's --log-dir")
    ap.add_argument("--data", default=str(DATA_DIR))
    ap.add_argument("--seed", type=int, default=0, help="the rebuild's --seed")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    set_threads(a.threads)
    second = Path(a.work) / "second_stage"
    rec = json.loads((second / "student.json").read_text())
    done = int(rec["training"]["hard_negatives"]["kept_rounds"])
    if not done:
        ap.error("the rebuild kept no hard-negative round: nothing to continue from")
    samples, meta = load_samples(second / "weak_samples.safetensors")
    share = json.loads((second / "area_share.json").read_text())["share"]
    samples = weights(samples, share)
    items = holdout.working_items(a.data, a.seed, float(meta["gsd"]))
    net = new_student(samples)
    tensors, _ = load_checkpoint(second / f"student.neg{done}.state.safetensors")
    net.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    t0 = time.time()

    def measure(n):
        return holdout.score(n, items)
    start = measure(net.eval())
    # the rebuild's own round and rule; seed + done makes this round draw as round done + 1 would
    _, _, record = hard_negatives(net, samples, measure, start, rounds=1, seed=a.seed + done)
    out = {"work": str(a.work), "kept_rounds": done, "recorded": rec["holdout"], "start": start,
           f"round_{done + 1}": record["rounds"][1], "kept_by_rule": record["kept_rounds"] == 1,
           "seconds": round(time.time() - t0, 1)}
    print(json.dumps(out))
    print(save("hard_negative_round", out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
