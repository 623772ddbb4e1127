"""One small exception hierarchy: the CLI turns each into one `error:` line and exit 2."""


class LandslideWSSSError(Exception):
    """Base class of every error the package raises on purpose."""


class InputError(LandslideWSSSError):
    """The input scene, directory or option cannot be used (missing, not a raster, no CRS, ...)."""


class ModelError(LandslideWSSSError):
    """A model file is missing, corrupt, of the wrong architecture, or does not fit the scene."""


class OutputError(LandslideWSSSError):
    """The output exists (without overwrite), or its directory is missing or not writable."""
