"""requests' runtime protocol checks with the same answers, without typing's slow path.

requests (2.33 on) asks ``isinstance(x, SupportsItems)`` and ``isinstance(x, SupportsRead)``,
runtime-checkable :class:`typing.Protocol` classes, about six times while preparing each request
(merging the session's headers and settings, encoding the query). On Python 3.11 each such check
works the protocol's members out afresh and consults its subclass hook, about 20 microseconds: a
quarter of a GitLab call's client CPU here. :func:`install` puts, in place of the two names
requests' modules look up, classes whose ``isinstance`` answers as the protocol does, directly.

The answer is typing's: true when a class in the object's MRO defines the method (and not as
``None``), or the object itself has it, not ``None``. Only those two module globals change, and
only if they are what this was written against (a runtime protocol of that one method):
with another requests, nothing is replaced. TLS, timeouts, redirects and headers are untouched.
"""

import typing

import requests.models
import requests.utils


class _Quick(type):
    """A metaclass whose ``isinstance`` is the structural check of a one-method runtime protocol."""

    method: str
    by_class: dict[type, bool]

    def __instancecheck__(cls, instance: object) -> bool:
        """Whether ``instance`` has ``cls.method`` (not ``None``), as ``typing`` decides it."""
        kind = type(instance)
        found = cls.by_class.get(kind)
        if found is None:
            found = cls.by_class[kind] = _defines(kind, cls.method)
        return found or getattr(instance, cls.method, None) is not None


def _defines(kind: type, method: str) -> bool:
    """Whether the first class of ``kind``'s MRO holding ``method`` holds something other than ``None``."""
    for base in kind.__mro__:
        if method in base.__dict__:
            return base.__dict__[method] is not None
    return False


def _quick(name: str, method: str) -> type:
    return _Quick(name, (), {"method": method, "by_class": {}})


#: (module, global name, the protocol's one method) for each check replaced.
_CHECKS = ((requests.models, "_SupportsRead", "read"), (requests.utils, "_SupportsItems", "items"))


def install() -> None:
    """Replace requests' protocol checks (see the module docstring); idempotent."""
    for module, name, method in _CHECKS:
        found = getattr(module, name, None)
        if _is_one_method_protocol(found, method):
            setattr(module, name, _quick(name, method))


def _is_one_method_protocol(found: object, method: str) -> bool:
    """Whether ``found`` is a runtime-checkable protocol whose one member is ``method``."""
    return (
        isinstance(found, type)
        and issubclass(found, typing.Protocol)
        and getattr(found, "_is_runtime_protocol", False)
        and set(typing_members(found)) == {method}
    )


def typing_members(protocol: type) -> set[str]:
    """A protocol's members as ``typing`` counts them (none if this Python's typing hides them)."""
    members = getattr(typing, "_get_protocol_attrs", None)
    return set(members(protocol)) if callable(members) else set()
