"""The description rotator gives every token it creates, for whoever finds the token in GitLab.

GitLab (17.7 and later) shows a token's ``description`` beside it in the UI and the API, and keeps
it through a rotation; a person wondering whether to rotate or revoke the token by hand reads it
there. So it says who manages the token, for which target (and which owner and Infisical
connection), and not to rotate it by hand. One builder serves every kind of owner: a project, a
group, a service account.

GitLab keeps at most 255 characters (a database check, with no clean error before it): a longer
text is cut in the middle, so the opening and the warning always survive.
"""

#: GitLab's limit on ``description`` (``add_text_limit … 255``): characters, not bytes.
MAX_LENGTH = 255
_OPENING = "Managed by rotator for target "
_WARNING = ". Do not rotate or revoke it by hand: rotator replaces it and updates Infisical."
_CUT = "..."


def token_description(target: str, kind: str, owner: int | str, connection_id: str) -> str:
    """The description for a token of ``target``, owned by ``kind`` ``owner`` (``project``, ``acme/app``).

    ``kind`` is the target's owner kind as the config spells it (``project``, ``group``,
    ``service_account``); ``owner`` its id or path.
    """
    about = f"{target} ({kind.replace('_', ' ')} {owner}, Infisical connection {connection_id})"
    room = MAX_LENGTH - len(_OPENING) - len(_WARNING)
    if len(about) > room:
        about = about[: room - len(_CUT)] + _CUT
    return f"{_OPENING}{about}{_WARNING}"
