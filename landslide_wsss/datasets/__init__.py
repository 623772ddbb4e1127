"""Datasets: Bijie folder (image-level labels from file names), chips from GeoTIFF scenes,
Landslide4Sense h5 patches. All return raw band values; normalization statistics come from
`band_stats` over the training data and travel with the model."""
from .common import ChipSet, band_stats

__all__ = ["ChipSet", "band_stats"]
