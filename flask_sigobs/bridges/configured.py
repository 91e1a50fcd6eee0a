"""Signals named in configuration: ``SIGOBS_OBSERVE`` and ``SIGOBS_AUTH_SIGNALS``.

Both take comma-separated import paths ``package.module:name`` (``name`` may be dotted: an
attribute of an attribute), each optionally renamed with ``=event.name``::

    SIGOBS_OBSERVE=shop.signals:order_placed=shop.order_placed,shop.signals:refunded
    SIGOBS_AUTH_SIGNALS=myapp._vendor.flask_login.signals:user_logged_in

``SIGOBS_OBSERVE`` observes each as ``SigObs.observe()`` does (the signal's own name, ``info``).
``SIGOBS_AUTH_SIGNALS`` observes each as an authentication event: ``auth.<name>`` after the
path's last name, the level and the request's user from that name (:func:`bridges.auth_level`).
This is the way, without code, to see the logins of an app that ships its own copy of
Flask-Login under another module name, or its own login signals.

A path that does not import, or that names something other than a blinker signal, fails at
``init_app`` with a ``ConfigError`` naming the key and the path: the import is done there, once.
"""

from __future__ import annotations

import importlib
import logging
import re
from typing import Any

from ..config import ConfigError
from . import Source, auth_level

_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*\Z")
_EVENT = re.compile(r"[\w.:-]{1,128}\Z")


def parse(entries: list[str], key: str, is_auth: bool) -> tuple[Source, ...]:
    """One :class:`Source` per entry (already split on commas), each signal imported."""
    found: dict[Any, Source] = {}
    for entry in entries:
        path, _, rename = entry.partition("=")
        path, rename = path.strip(), rename.strip()
        if not _PATH.match(path):
            raise ConfigError(f"{key}: {entry!r} is not an import path 'package.module:name[=event.name]'")
        if "=" in entry and not _EVENT.match(rename):
            raise ConfigError(f"{key}: {rename!r} (in {entry!r}) is not an event name")
        signal = resolve(path, key)
        name = path.rpartition(":")[2].rpartition(".")[2]
        if is_auth:
            level, identifies = auth_level(name)
            event = rename or f"auth.{name}"
        else:
            level, identifies = logging.INFO, False
            event = rename or getattr(signal, "name", None) or name
        found[signal] = Source(signal, event, level, identifies, None, is_auth, path)  # the last one wins
    return tuple(found.values())


def resolve(path: str, key: str) -> Any:
    """The object at ``package.module:name``: a blinker signal, or a ConfigError saying why not."""
    module_name, _, attributes = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module raised while importing
        raise ConfigError(f"{key}: cannot import {module_name!r} (for {path!r}): "
                          f"{type(exc).__name__}: {exc}") from None
    for attribute in attributes.split("."):
        try:
            target = getattr(target, attribute)
        except AttributeError:
            raise ConfigError(f"{key}: {path!r} does not exist ({module_name!r} has no "
                              f"{attributes!r})") from None
    if not (callable(getattr(target, "connect", None)) and callable(getattr(target, "send", None))):
        raise ConfigError(f"{key}: {path!r} is a {type(target).__name__}, not a blinker signal")
    return target
