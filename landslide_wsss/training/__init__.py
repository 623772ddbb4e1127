"""Training: the trainers (one module each, all through loop.py), the rebuild of the default model
(default.py, the command; rebuild/, its stages), the student (student.py) and `train weak` (weak.py).
The hold-outs every rule reads: holdout.py; the one self-training rule: selftrain.py; data paths: data.py."""
