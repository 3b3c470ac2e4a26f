"""Errors a person can act on: each message names the problem and the fix."""


class EtlError(Exception):
    """Base class: a run failed for a reason worth showing as is (no traceback needed)."""


class SourceError(EtlError):
    """The vPIC source is missing, unreadable or not a vPIC database."""


class ReleaseError(EtlError):
    """A release name is malformed, or no configured source can be that release."""


class RestoreError(EtlError):
    """A backup could not be found or restored."""


class TransientError(EtlError):
    """A failure another attempt may not meet (a server still starting, a timeout): Airflow retries it."""


class TransientRestoreError(RestoreError, TransientError):
    """The SQL Server could not be reached or timed out."""


class QualityGateError(EtlError):
    """Staged data failed a blocking data-quality check; live was not touched."""


class SwapError(EtlError):
    """Promotion or rollback could not be done; live is unchanged."""


class ConcurrentRunError(TransientError):
    """Another run holds the pipeline lock."""
