"""Errors of the storage layer, under the one root :class:`secagg.errors.SecAggError`."""

from __future__ import annotations

from secagg.errors import SecAggError

__all__ = [
    "IntegrityError",
    "InvalidCidError",
    "NotFoundError",
    "StoreError",
    "StoreProtocolError",
    "StoreUnavailableError",
]


class StoreError(SecAggError):
    """Root of everything that goes wrong with a content-addressed store."""


class InvalidCidError(StoreError):
    """A string or bytes that is not a CID this package handles."""


class IntegrityError(StoreError):
    """The bytes a store returned do not match the CID they were asked for."""


class NotFoundError(StoreError):
    """The store does not hold the CID."""


class StoreUnavailableError(StoreError):
    """The store (an IPFS daemon) cannot be reached, or timed out, after the retries."""


class StoreProtocolError(StoreError):
    """The store answered with something that is not a valid response (garbage)."""
