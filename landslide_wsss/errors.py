"""One small exception hierarchy: the CLI turns each into one `error:` line and exit 2. Each also
subclasses the built-in it is a kind of (as rasterio's errors do), so `except ValueError` still works."""


class LandslideWSSSError(Exception):
    """Base class of every error the package raises on purpose."""


class InputError(LandslideWSSSError, ValueError):
    """The input scene, directory or option cannot be used (missing, not a raster, no CRS, ...)."""


class ModelError(LandslideWSSSError, ValueError):
    """A model file is missing, corrupt, of the wrong architecture, or does not fit the scene."""


class OutputError(LandslideWSSSError, OSError):
    """The output exists (without overwrite), or its directory is missing or not writable."""


class NothingToDetect(UserWarning):
    """The scene has no valid pixel: the result is an empty layer."""


class InputWarning(UserWarning):
    """The input is usable but lies far outside what the model was trained on (said once per scene)."""


class RadiometryWarning(InputWarning):
    """A scene's band values, mapped onto the model's radiometry, still fall far outside its training data."""


class ResolutionWarning(InputWarning):
    """A scene's native ground sampling distance is far from the model's working GSD."""
