"""Retry policies: redis-py's ``Retry`` and backoff classes, mapped onto brisk's C policy.

``Retry(ExponentialBackoff(cap=0.512, base=0.008), 3)`` is go-redis's classic policy. Times are
seconds (floats), as in redis-py; brisk keeps whole milliseconds.
"""

from __future__ import annotations

import builtins
from typing import Iterable, Optional, Tuple, Type, Union

from . import _native
from .constants import BackoffKind, Status

DEFAULT_CAP = 0.512
DEFAULT_BASE = 0.008


def _ms(seconds: float) -> int:
    if seconds < 0:
        raise ValueError("backoff times cannot be negative")
    return int(round(seconds * 1000))


class AbstractBackoff:
    """A way for the delay between attempts to grow; ``kind``, ``base`` and ``cap`` say which."""

    kind: BackoffKind = BackoffKind.NONE
    base: float = 0.0
    cap: float = 0.0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cap={self.cap!r}, base={self.base!r})"


class NoBackoff(AbstractBackoff):
    """Retry at once."""

    kind = BackoffKind.NONE


class ConstantBackoff(AbstractBackoff):
    """``backoff`` seconds before every retry."""

    kind = BackoffKind.CONSTANT

    def __init__(self, backoff: float) -> None:
        self.base = self.cap = backoff


class ExponentialBackoff(AbstractBackoff):
    """``min(cap, base * 2**attempt)``."""

    kind = BackoffKind.EXPONENTIAL

    def __init__(self, cap: float = DEFAULT_CAP, base: float = DEFAULT_BASE) -> None:
        self.cap, self.base = cap, base


class FullJitterBackoff(ExponentialBackoff):
    """``uniform(0, min(cap, base * 2**attempt))`` (brisk's default kind)."""

    kind = BackoffKind.FULL_JITTER


class EqualJitterBackoff(ExponentialBackoff):
    """``t/2 + uniform(0, t/2)`` with ``t = min(cap, base * 2**attempt)``."""

    kind = BackoffKind.EQUAL_JITTER


class DecorrelatedJitterBackoff(ExponentialBackoff):
    """``min(cap, uniform(base, previous * 3))``."""

    kind = BackoffKind.DECORRELATED_JITTER


# The built-in exceptions redis-py's retry settings often name, and the statuses they mean.
_BUILTIN = {
    builtins.TimeoutError: (Status.TIMEOUT,),
    builtins.ConnectionError: (Status.CONNECTION,),
    builtins.OSError: (Status.CONNECTION, Status.TIMEOUT),
}

ErrorSpec = Union[int, Type[BaseException]]


class Retry:
    """``retries`` retries after the first attempt, delayed by ``backoff``.

    ``supported_errors`` (optional) chooses which failures are retried: exception classes (their
    statuses: ``ConnectionError`` covers CONNECTION, ``TimeoutError`` TIMEOUT, ...) or
    :class:`~brisk.Status` values. Without it brisk's default set applies (CONNECTION, TIMEOUT,
    BUSY_LOADING, CLUSTER_DOWN, READONLY).
    """

    def __init__(
        self,
        backoff: AbstractBackoff,
        retries: int,
        supported_errors: Optional[Iterable[ErrorSpec]] = None,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0 (brisk never retries forever)")
        self.backoff = backoff
        self.retries = retries
        self.supported_errors: Optional[Tuple[ErrorSpec, ...]] = (
            tuple(supported_errors) if supported_errors is not None else None
        )

    def _c_args(self) -> Tuple[int, int, int, int]:
        base, cap = _ms(self.backoff.base), _ms(self.backoff.cap)
        return (int(self.backoff.kind), base, max(cap, base), self.retries)

    def delay(self, attempt: int) -> float:
        """The delay in seconds before retry number ``attempt`` (0-based); a fresh random draw
        for the jittered kinds (``brisk_retry_backoff_ms``)."""
        return _native.retry_backoff_ms(*self._c_args(), attempt) / 1000.0

    def __repr__(self) -> str:
        return f"Retry({self.backoff!r}, {self.retries})"


def statuses_of(errors: Iterable[ErrorSpec]) -> Tuple[int, ...]:
    """The statuses exception classes (or statuses) stand for: a class covers the statuses
    whose exceptions are instances of it (``ConnectionError`` includes AUTH, TLS, ...)."""
    from .exceptions import _BY_STATUS

    out = []
    for spec in errors:
        if isinstance(spec, int):
            out.append(int(Status(spec)))
            continue
        if spec in _BUILTIN:  # redis-py's defaults name socket.timeout and friends
            out.extend(int(s) for s in _BUILTIN[spec])
            continue
        matched = [s for s, cls in _BY_STATUS.items() if issubclass(cls, spec)]
        if not matched:
            raise ValueError(f"{spec!r} matches no brisk status")
        out.extend(int(s) for s in matched)
    return tuple(dict.fromkeys(out))
