"""Every error secagg raises on purpose derives from :class:`SecAggError`.

The tree (modelled on pynacl's ``nacl.exceptions``)::

    SecAggError
    ├── ConfigError                 a parameter is invalid; the message names it and the fix
    ├── ProtocolError               a protocol rule was broken
    │   ├── LocalProtocolError      ... by the local caller (misuse of a machine)
    │   │   ├── InvalidInputError   the local input cannot be encoded (NaN, wrong shape, ...)
    │   │   └── SecretPicklingError a secret-holding object was asked to serialise itself
    │   └── RemoteProtocolError     ... by a peer (malformed, out-of-phase, replayed message)
    │       ├── WireError           bytes that do not decode to a valid message
    │       ├── OutOfPhaseError     a message type the machine does not accept in its phase
    │       ├── WrongSessionError   another session id or round (a replay)
    │       ├── UnknownSenderError  a sender that is not (or no longer) a participant
    │       ├── DuplicateMessageError a second message from one sender in one phase
    │       ├── WrongRingError      a vector in another ring (dtype) than the session's
    │       ├── WrongLengthError    a vector of another length than the session's
    │       ├── RoutingError        a share addressed to (or from) a client that is not a neighbour
    │       ├── RefusedRequestError a server request an honest client must refuse
    │       ├── AuthenticationError AEAD tag, signature or key agreement check failed
    │       │   └── WeakKeyError    a small-order X25519 key nobody can agree a secret with
    │       ├── CorruptShareError   a revealed share other than the one its dealer committed to
    │       └── CiphertextError     an HE ciphertext that does not parse or fit the task's keys
    ├── AbortError                  the round cannot finish correctly (e.g. too few survivors)
    └── CryptoError                 a primitive was used outside its domain
        ├── ShamirError
        │   ├── NotEnoughSharesError
        │   └── InconsistentSharesError
        └── MissingSecretKeyError   decryption asked of a party that holds only public keys

A caller who wants "anything secagg rejected" catches :class:`SecAggError`; a driver that must
tell a misbehaving peer from its own bug catches :class:`RemoteProtocolError` and
:class:`LocalProtocolError` separately. Errors from deep inside numpy/torch/cryptography are
translated at the boundary where we know what the input meant.
"""

from __future__ import annotations

__all__ = [
    "AbortError",
    "AuthenticationError",
    "CiphertextError",
    "ConfigError",
    "CorruptShareError",
    "CryptoError",
    "DuplicateMessageError",
    "InconsistentSharesError",
    "InvalidInputError",
    "LocalProtocolError",
    "MissingSecretKeyError",
    "NotEnoughSharesError",
    "OutOfPhaseError",
    "ProtocolError",
    "RefusedRequestError",
    "RemoteProtocolError",
    "RoutingError",
    "SecAggError",
    "SecretPicklingError",
    "ShamirError",
    "UnknownSenderError",
    "WeakKeyError",
    "WireError",
    "WrongLengthError",
    "WrongRingError",
    "WrongSessionError",
]


class SecAggError(Exception):
    """Root of every error secagg raises deliberately."""


class ConfigError(SecAggError, ValueError):
    """A configuration value is invalid. The message says which value and what would work.

    Attributes
    ----------
    parameter:
        The name of the offending parameter (``"clip"``, ``"quant_bits"``, ...), when one is
        to blame.
    """

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class ProtocolError(SecAggError):
    """A rule of the protocol was broken."""


class LocalProtocolError(ProtocolError):
    """The local caller misused a machine (wrong phase, missing input, ...).

    The machine's state is unchanged; this is a bug in the driver, not an attack.
    """


class InvalidInputError(LocalProtocolError):
    """The local input vector cannot be encoded (NaN/inf, wrong dtype, wrong shape, ...)."""


class SecretPicklingError(LocalProtocolError, TypeError):
    """A secret-holding object refuses to be pickled or copied out of the process."""


class RemoteProtocolError(ProtocolError):
    """A peer sent something the protocol forbids. The machine's state is unchanged.

    Attributes
    ----------
    sender:
        The claimed sender of the offending message, when known.
    """

    def __init__(self, message: str, *, sender: int | None = None) -> None:
        super().__init__(message)
        self.sender = sender


class WireError(RemoteProtocolError):
    """Bytes that are not the canonical encoding of a known message."""


class OutOfPhaseError(RemoteProtocolError):
    """A message of a type the machine does not accept in its current phase."""


class WrongSessionError(RemoteProtocolError):
    """A message bound to another session id or round: a replay or a misrouted message."""


class UnknownSenderError(RemoteProtocolError):
    """A message from an id that is not a participant of this phase (or claims the server)."""


class DuplicateMessageError(RemoteProtocolError):
    """A second message from the same sender in the same phase; the first one stands."""


class WrongRingError(RemoteProtocolError):
    """A vector is not in the session's ring Z_{2^b} (wrong dtype or bit width)."""


class WrongLengthError(RemoteProtocolError):
    """A vector does not have the session's length d."""


class RoutingError(RemoteProtocolError):
    """Shares addressed to (or forwarded from) clients that are not the sender's neighbours,
    a missing or repeated recipient, or shares for owners the sender never held."""


class RefusedRequestError(RemoteProtocolError):
    """A server request that an honest client refuses, because answering it would reveal a
    secret the protocol protects (both shares of one client, an unmasking of too few
    survivors, a second unmasking request) or contradict what the client saw earlier."""


class AuthenticationError(RemoteProtocolError):
    """An authenticity check failed: AEAD tag, signature, or a low-order public key."""


class CorruptShareError(RemoteProtocolError):
    """A revealed Shamir share that is not the one its dealer committed to for this holder:
    the holder's fault. Its whole unmasking response is refused; the others' shares decide."""


class WeakKeyError(AuthenticationError):
    """An X25519 public key of small order: every agreement with it is all zero, so nobody
    can agree a key with its sender. Raised where the key arrives; its sender is left out."""


class CiphertextError(RemoteProtocolError):
    """A homomorphic ciphertext that does not parse, or does not fit the task's keys and
    parameters (another modulus, scale or level; out of Z*_{n^2}; wrong count or size)."""


class AbortError(SecAggError):
    """The round cannot complete correctly, so it ends without a result.

    Attributes
    ----------
    reason:
        A short machine-readable reason, e.g. ``"too-few-survivors"``.
    culprits:
        The clients accused of making the round impossible, when there is an accusation (the
        dealer of share boxes that did not open at their receivers). The accusation is the
        receivers' word: boxes carry no proof, so colluding receivers can accuse an honest
        dealer; ``detail`` names them. A driver may leave the accused out of the next round.
    """

    def __init__(self, reason: str, detail: str, *, culprits: frozenset[int] = frozenset()) -> None:
        super().__init__(f"round aborted ({reason}): {detail}")
        self.reason = reason
        self.detail = detail
        self.culprits = culprits


class CryptoError(SecAggError):
    """A primitive was called outside its domain (wrong key size, out-of-field value, ...)."""


class ShamirError(CryptoError):
    """Secret sharing failed."""


class NotEnoughSharesError(ShamirError):
    """Fewer shares than the threshold: the secret is information-theoretically hidden."""


class InconsistentSharesError(ShamirError):
    """More than ``t`` shares were given and they do not lie on one polynomial of degree t-1."""


class MissingSecretKeyError(CryptoError):
    """Decryption was asked of a party that holds only the public context (an aggregator)."""
