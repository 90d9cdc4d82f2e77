"""Exception types: one root so callers (and the CLI) can catch every mcrgpu error."""

__all__ = ["McrgpuError", "InvalidInputError", "DeviceConfigError", "FileFormatError"]


class McrgpuError(Exception):
    """Root of every error mcrgpu raises on purpose."""


class InvalidInputError(McrgpuError, ValueError):
    """An argument or input array is not valid; the message says what would be."""


class DeviceConfigError(McrgpuError, RuntimeError):
    """The requested devices or precision cannot be set up on this machine."""


class FileFormatError(McrgpuError, ValueError):
    """A file is missing, truncated, corrupt or of a kind mcrgpu does not read."""
