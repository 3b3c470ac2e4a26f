"""Errors a person can act on: each message names the problem and the fix."""


class EtlError(Exception):
    """Base class: a run failed for a reason worth showing as is (no traceback needed)."""


class SourceError(EtlError):
    """The vPIC source is missing, unreadable or not a vPIC database."""


class RestoreError(EtlError):
    """A backup could not be found or restored."""


class QualityGateError(EtlError):
    """Staged data failed a blocking data-quality check; live was not touched."""


class SwapError(EtlError):
    """Promotion or rollback could not be done; live is unchanged."""


class ConcurrentRunError(EtlError):
    """Another run holds the pipeline lock."""
