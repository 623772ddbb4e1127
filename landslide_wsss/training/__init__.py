"""Training: the trainers (one module each), the default-model command (default.py), the second stage
(second_stage.py, student.py) and `train weak` (weak.py). Shared data paths and hold-outs: data.py."""
