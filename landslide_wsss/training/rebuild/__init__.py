"""The rebuild of the embedded default model (`landslide-wsss train default`): one declared
pipeline (stages.py: the stage table and its driver) over one work directory (workdir.py).

first_stage.py  the classifier, the CycleGAN generator, the CAM refinements
teacher.py      the teacher's choice and its pseudo-masks, cut into samples at a working GSD
sweeps.py       the rules that train to choose: working scale, area A share, training length
networks.py     the student and the supervised yardstick; putting a network into the model file
gate.py         the segmentation networks' threshold and hysteresis gate
select.py       the default method
The hold-outs every rule reads are training/holdout.py; the self-training rule training/selftrain.py.
"""
