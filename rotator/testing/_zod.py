"""Zod-style validation of the GitLab connection PATCH body, producing zod's issue objects.

Infisical validates ``PATCH /api/v1/app-connections/gitlab/:connectionId`` with
``UpdateGitLabConnectionSchema`` and answers a failure with ``422 ValidationFailure`` whose
``message`` is zod's ``issues`` array. Unknown keys are stripped; strings are trimmed; the
``credentials`` union tries access-token, OAuth output, refresh-token and OAuth-code shapes in turn.
"""

import re
import urllib.parse

from typing import Any


Issue = dict[str, Any]
Path = list[str | int]

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_NOT_SUPPORTED = "Not supported for GitLab Connections"
_NON_FATAL = frozenset({"too_small", "too_big", "invalid_string"})


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}.get(
        type(value), "object"
    )


def _invalid_type(path: Path, expected: str, value: object) -> Issue:
    received = "undefined" if value is _MISSING else _type_name(value)
    text = "Required" if value is _MISSING else f"Expected {expected}, received {received}"
    return {
        "code": "invalid_type",
        "expected": expected,
        "received": received,
        "path": path,
        "message": text,
    }


_MISSING = object()


def required(key: str) -> Issue:
    """The issue of a missing required string field ``key``."""
    return _invalid_type([key], "string", _MISSING)


def uuid_issues(value: str) -> list[Issue]:
    """The issues of the ``connectionId`` path parameter."""
    if _UUID.match(value):
        return []
    return [
        {
            "validation": "uuid",
            "code": "invalid_string",
            "message": "Invalid uuid",
            "path": ["connectionId"],
        }
    ]


def _string(obj: dict[str, Any], key: str, path: Path, issues: list[Issue], *, required: bool) -> str | None:
    value = obj.get(key, _MISSING)
    if value is _MISSING and not required:
        return None
    if not isinstance(value, str):
        issues.append(_invalid_type([*path, key], "string", value))
        return None
    return value.strip()


def _access_token_shape(creds: dict[str, Any], *, accept_group: bool, issues: list[Issue]) -> dict[str, str]:
    path: Path = ["credentials"]
    token = _string(creds, "accessToken", path, issues, required=True)
    if token is not None and not token:
        issues.append(
            {
                "code": "too_small",
                "minimum": 1,
                "type": "string",
                "inclusive": True,
                "exact": False,
                "message": "Access Token required",
                "path": [*path, "accessToken"],
            },
        )
    url = _string(creds, "instanceUrl", path, issues, required=False)
    if url is not None:
        parts = urllib.parse.urlsplit(url)
        if not (parts.scheme and parts.netloc):
            issues.append(
                {
                    "validation": "url",
                    "code": "invalid_string",
                    "message": "Invalid Instance URL",
                    "path": [*path, "instanceUrl"],
                },
            )
    kind = creds.get("accessTokenType", _MISSING)
    options = ["project", "personal", "group"] if accept_group else ["project", "personal"]
    if kind is _MISSING or kind not in options:
        expected = " | ".join(f"'{o}'" for o in options)
        issues.append(
            _invalid_type([*path, "accessTokenType"], expected, kind)
            if kind is _MISSING
            else {
                "received": kind,
                "code": "invalid_enum_value",
                "options": options,
                "path": [*path, "accessTokenType"],
                "message": f"Invalid enum value. Expected {expected}, received '{kind}'",
            },
        )
    shaped = {"accessToken": token or ""}
    if url is not None:
        shaped["instanceUrl"] = url
    shaped["accessTokenType"] = str(kind)
    return shaped


def _keys_shape(creds: dict[str, Any], keys: tuple[str, ...], issues: list[Issue]) -> dict[str, str]:
    shaped: dict[str, str] = {}
    for key in keys:
        value = _string(creds, key, ["credentials"], issues, required=True)
        shaped[key] = value or ""
    return shaped


def parse_credentials(creds: object, *, accept_group: bool) -> tuple[str, dict[str, str], list[Issue]]:
    """Match ``creds`` against the union; return (matched shape, parsed value, issues)."""
    if not isinstance(creds, dict):
        return "", {}, [_invalid_type(["credentials"], "object", creds)]
    attempts: list[tuple[str, dict[str, str], list[Issue]]] = []
    issues: list[Issue] = []
    attempts.append(
        ("access-token", _access_token_shape(creds, accept_group=accept_group, issues=issues), issues)
    )
    for shape, keys in (
        ("oauth-output", ("accessToken", "refreshToken", "expiresAt")),
        ("refresh-token", ("refreshToken",)),
        ("oauth", ("code",)),
    ):
        issues = []
        attempts.append((shape, _keys_shape(creds, keys, issues), issues))
    for shape, value, found in attempts:
        if not found:
            return shape, value, []
    # zod's union returns the first "dirty" option as it is: one whose only failures are
    # refinements (min length, url), which do not abort parsing. Only when every option aborted
    # (a missing key, a wrong type, a bad enum) does it answer invalid_union.
    for _, _, found in attempts:
        if all(issue["code"] in _NON_FATAL for issue in found):
            return "", {}, found
    union = {
        "code": "invalid_union",
        "unionErrors": [{"issues": found, "name": "ZodError"} for _, _, found in attempts],
        "path": ["credentials"],
        "message": "Invalid input",
    }
    return "", {}, [union]


def _name_issues(name: str) -> list[Issue]:
    if not name:
        return [
            {
                "code": "too_small",
                "path": ["name"],
                "message": "name field must be at least 1 lowercase character",
            }
        ]
    if len(name) > 64:
        return [
            {
                "code": "too_big",
                "path": ["name"],
                "message": "name field must be at most 64 lowercase characters",
            }
        ]
    if not _SLUG.match(name):
        text = "name field can only contain lowercase letters, numbers, and hyphens"
        return [{"code": "custom", "path": ["name"], "message": text}]
    return []


def _description_issues(description: object) -> list[Issue]:
    if description is not None and not isinstance(description, str):
        return [_invalid_type(["description"], "string", description)]
    if isinstance(description, str) and len(description.strip()) > 256:
        text = "Description cannot exceed 256 characters"
        return [
            {
                "code": "too_big",
                "maximum": 256,
                "type": "string",
                "inclusive": True,
                "exact": False,
                "message": text,
                "path": ["description"],
            }
        ]
    return []


def _unsupported_issues(body: dict[str, Any]) -> list[Issue]:
    issues: list[Issue] = [
        {
            "received": body[key],
            "code": "invalid_literal",
            "expected": False,
            "path": [key],
            "message": _NOT_SUPPORTED,
        }
        for key in ("isPlatformManagedCredentials", "isAutoRotationEnabled")
        if key in body and body[key] is not False
    ]
    # gatewayId and rotation are z.undefined().or(z.null()): anything else fails both branches.
    issues.extend(
        {
            "code": "invalid_union",
            "unionErrors": [
                {
                    "issues": [{"code": "custom", "path": [key], "message": _NOT_SUPPORTED}],
                    "name": "ZodError",
                },
                {"issues": [_invalid_type([key], "null", body[key])], "name": "ZodError"},
            ],
            "path": [key],
            "message": "Invalid input",
        }
        for key in ("gatewayId", "rotation")
        if body.get(key) is not None
    )
    return issues


def parse_update(body: object, *, accept_group: bool) -> tuple[dict[str, Any], list[Issue]]:
    """Validate a PATCH body; return the stripped, trimmed value and zod's issues."""
    if not isinstance(body, dict):
        return {}, [_invalid_type([], "object", body if body is not None else _MISSING)]
    issues: list[Issue] = []
    parsed: dict[str, Any] = {}
    name = _string(body, "name", [], issues, required=False)
    if name is not None:
        issues += _name_issues(name)
        parsed["name"] = name
    if "description" in body:
        issues += _description_issues(body["description"])
        description = body["description"]
        parsed["description"] = description.strip() if isinstance(description, str) else None
    issues += _unsupported_issues(body)
    if "credentials" in body:  # optional, not nullable: null is a type error
        shape, value, found = parse_credentials(body["credentials"], accept_group=accept_group)
        issues += found
        parsed["credentials"] = (shape, value)
    return parsed, issues
