"""The response's headers, read and written the short way on werkzeug's own ``Headers``.

Every request writes the request id header and reads ``Content-Length`` for the access line.
werkzeug's ``Headers`` keeps its headers as a list of (name, value) pairs, and its methods and
``Response.content_length`` reach them through several Python calls each (a header property, a
key check, a case-insensitive lookup): together some dozen calls a request, for a list of two or
three pairs. Any other headers class goes through its own methods. ``_list`` is werkzeug's, not a
contract: ``selfcheck.headers`` proves these functions do what werkzeug's methods do, once per
process, and the ``public_*`` ones are used where it does not hold.
"""

from __future__ import annotations

from typing import Any

from werkzeug.datastructures import Headers


def put_header(headers: Any, name: str, value: str) -> None:
    """``headers[name] = value``; on werkzeug's ``Headers``, appended to its list directly.

    Its ``set`` checks the value for newlines (ours is a safe token: ``request_id_from``) through
    three more Python calls: about 4,000 instructions a request more than this loop. A header of
    that name the app set already is replaced, as ``set`` replaces it.
    """
    if type(headers) is not Headers:
        headers[name] = value
        return
    lower = name.lower()
    for key, _ in headers._list:
        if key.lower() == lower:
            headers[name] = value
            return
    headers._list.append((name, value))


def content_length(response: Any) -> int | None:
    """``response.content_length``: the ``Content-Length`` header as a number, ``None`` when it is
    missing or not a number (as werkzeug's property says)."""
    headers = response.headers
    if type(headers) is not Headers:
        return response.content_length
    for key, value in headers._list:
        if key.lower() == "content-length":
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
    return None


def public_put_header(headers: Any, name: str, value: str) -> None:
    """:func:`put_header` through werkzeug's public API: where the short way is off."""
    headers[name] = value


def public_content_length(response: Any) -> int | None:
    """:func:`content_length` through werkzeug's public API: where the short way is off."""
    return response.content_length
