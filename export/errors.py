"""Errors a user can cause at export time: each names the file or tensor and what was expected."""


class ExportError(Exception):
    """Base class: anything that stops an export with a message for the user."""


class CheckpointError(ExportError):
    """The checkpoint folder is missing something, or has it in the wrong shape or format."""


class VerificationError(ExportError):
    """The written graph disagrees with the torch model; the model folder is not written."""
