"""User-facing errors: the CLI prints these as one line and exits non-zero."""


class AnyIRError(Exception):
    """A problem the user can fix (bad file, bad flag, bad size). Never a bug."""

    exit_code = 2


class CheckpointError(AnyIRError):
    pass


class ImageError(AnyIRError):
    pass
