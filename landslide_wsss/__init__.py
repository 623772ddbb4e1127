"""landslide_wsss: weakly supervised landslide mapping for GeoTIFF scenes."""

__version__ = "0.1.0"
