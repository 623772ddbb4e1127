"""Scoring models that are not the classifier-based weak scorers (wsss.py): the segmentation networks."""
