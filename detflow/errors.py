"""Exceptions raised by detflow.

Every error a user can cause (bad input file, missing or mismatched reference
file, bad parameter) is a :class:`DetflowError`; the command line prints its
message without a traceback and exits with status 2.
"""


class DetflowError(Exception):
    """Base class of every error detflow reports to the user."""


class InputFileError(DetflowError, ValueError):
    """An input file is unreadable, truncated or not the expected JWST product.

    The message names the file and says what is wrong with it.
    """

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ReferenceFileError(DetflowError, LookupError):
    """A reference file is missing, unreadable or does not match the exposure."""

    def __init__(self, reftype, exposure, problem, hint=None):
        self.reftype = reftype
        self.exposure = str(exposure)
        self.problem = problem
        if hint is None:
            hint = (
                f"supply one with override_{reftype.lower()}=PATH "
                f"(command line: --steps.<step>.override_{reftype.lower()}=PATH), "
                "a folder of reference files with refs_dir=DIR (command line: --refs DIR; "
                "by default the refs/ folder beside the exposure, or beside the exposure "
                "a product was calibrated from), or a CRDS cache via CRDS_PATH"
            )
        self.hint = hint
        super().__init__(
            f"{reftype.upper()} reference file for {self.exposure}: {problem}; {hint}"
        )


class ParameterError(DetflowError, ValueError):
    """A step or pipeline parameter has an invalid name or value."""


class ProductError(DetflowError):
    """A product could not be written; the message names the output path."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ProductWriteError(ProductError, OSError):
    """The output location cannot be written (not a folder, not writable, disk full)."""


class ProductContentError(ProductError, ValueError):
    """The Dataset lacks a variable the product needs, or has the wrong shape for it."""
