"""Typed exceptions raised by faceiqa.

Every error a caller can provoke with bad input derives from :class:`FaceIQAError`, so
``except faceiqa.FaceIQAError`` catches all of them; each also derives from the closest
built-in exception so generic handlers keep working. Messages are one line.
"""

from __future__ import annotations


class FaceIQAError(Exception):
    """Base class of every error faceiqa raises on purpose."""


class InvalidArgumentError(FaceIQAError, ValueError):
    """An argument has the wrong type, shape, range or value."""


class ImageReadError(FaceIQAError, OSError):
    """A file could not be read as an image (missing, corrupt, too large, not an image...)."""


class WeightsError(FaceIQAError):
    """Base class of errors about model weights."""


class UnknownWeightsError(WeightsError, KeyError):
    """A weights name is not in the registry."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it one plain line
        return str(self.args[0]) if self.args else ""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """A weights file is not on disk and may not (or could not) be downloaded."""


class ChecksumError(WeightsError):
    """A weights file does not match the sha256 recorded in the registry."""


class DownloadError(WeightsError):
    """Downloading a weights file failed."""


class CheckpointError(WeightsError):
    """A checkpoint does not fit the network (missing, unexpected or mis-shaped keys)."""
