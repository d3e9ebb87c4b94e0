"""A value that must never be shown. Core module: standard library only."""

import hmac


class Secret:
    """Holds a credential; ``repr``/``str``/formatting show ``***``, never the value.

    The value comes out only through :meth:`reveal`, at the one place that sends it upstream.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        """Wrap ``value``."""
        self._value = value

    def reveal(self) -> str:
        """The value itself; call only where it goes on the wire."""
        return self._value

    def __repr__(self) -> str:
        """Redacted."""
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        """Redacted, whatever the format spec."""
        del spec
        return "***"

    def __eq__(self, other: object) -> bool:
        """Constant-time comparison with another Secret."""
        return isinstance(other, Secret) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        """Secrets are not meant for sets or dict keys; hash by identity."""
        return id(self)

    def __reduce__(self) -> str | tuple[object, ...]:
        """Refuse to be pickled, so a value cannot leak into a file or a queue."""
        msg = "a Secret cannot be pickled"
        raise TypeError(msg)
