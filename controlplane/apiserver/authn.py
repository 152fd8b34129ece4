"""Who is asking: the apiserver's authenticators.

In kube-apiserver's order: a TLS client certificate signed by --client-ca-file
(CN = user, O = groups), then a bearer token from the static token file
(kube-apiserver's --token-auth-file format). Bootstrap tokens live in the same
file: a line whose groups include system:bootstrappers must hold a token of the
form `[a-z0-9]{6}.[a-z0-9]{16}` and is the user `system:bootstrap:<id>`
(`bootstrap_token_line` writes one). A request with neither is anonymous and
answered 401, except the public health paths.

The file is re-read when it changes, so a token registered while the apiserver
runs (or removed) counts from the next request on.
"""
from __future__ import annotations

import contextvars
import csv
import io
import logging
import os
import time
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("kubeling.apiserver.authn")

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
BOOTSTRAPPERS = "system:bootstrappers"
NODES = "system:nodes"
NODE_PREFIX = "system:node:"
BOOTSTRAP_PREFIX = "system:bootstrap:"
BOOTSTRAP_TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")


@dataclass(frozen=True)
class UserInfo:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()

    def in_group(self, group: str) -> bool:
        return group in self.groups

    @property
    def node_name(self) -> str | None:
        """The node this user is, when it is one (`system:node:<name>` in system:nodes)."""
        if self.in_group(NODES) and self.name.startswith(NODE_PREFIX) and len(self.name) > len(NODE_PREFIX):
            return self.name[len(NODE_PREFIX):]
        return None


# Who the current request is: the registry's strategies read it (a CSR records its requester).
CURRENT_USER: contextvars.ContextVar[UserInfo | None] = contextvars.ContextVar("kubeling_user", default=None)

# When the apiserver runs without any authenticator, every request is the admin (as before).
UNAUTHENTICATED_ADMIN = UserInfo("admin", "", (MASTERS, AUTHENTICATED))


def _user(name: str, uid: str, groups: list[str]) -> UserInfo:
    groups = [g for g in dict.fromkeys(groups) if g]
    if AUTHENTICATED not in groups:
        groups.append(AUTHENTICATED)
    return UserInfo(name, uid, tuple(groups))


def bootstrap_token_line(token: str) -> str:
    """The token-file line that registers a bootstrap token (for `kubeling init`)."""
    m = BOOTSTRAP_TOKEN_RE.match(token)
    if not m:
        raise ValueError(f"bootstrap token {token!r} is not of the form [a-z0-9]{{6}}.[a-z0-9]{{16}}")
    return f'{token},{BOOTSTRAP_PREFIX}{m.group(1)},,{BOOTSTRAPPERS}\n'


def parse_token_file(text: str, source: str = "token file") -> dict[str, UserInfo]:
    """token -> user. Lines: `token,user,uid,"group1,group2"`; the older `token` and
    `token,user` lines are the admin (system:masters), as before; `#` starts a comment."""
    tokens: dict[str, UserInfo] = {}
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), 1):
        row = [c.strip() for c in row]
        if not row or not row[0] or row[0].startswith("#"):
            continue
        token = row[0]
        if len(row) == 1:
            user = _user("admin", "", [MASTERS])
        elif len(row) == 2:
            user = _user(row[1] or "admin", "", [MASTERS])
        else:
            groups = [g.strip() for g in row[3].split(",")] if len(row) > 3 else []
            if not row[1]:
                raise ValueError(f"{source} line {lineno}: the user name is empty")
            if BOOTSTRAPPERS in groups:
                m = BOOTSTRAP_TOKEN_RE.match(token)
                if not m:
                    raise ValueError(f"{source} line {lineno}: a {BOOTSTRAPPERS} token must be of the form "
                                     "[a-z0-9]{6}.[a-z0-9]{16}")
                # The user name of a bootstrap token is its id, whatever the line says.
                user = _user(BOOTSTRAP_PREFIX + m.group(1), row[2], [BOOTSTRAPPERS])
            else:
                user = _user(row[1], row[2], groups)
        tokens[token] = user
    return tokens


class TokenFile:
    """The static token file, re-read when its modification time changes."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._tokens: dict[str, UserInfo] = {}
        self._checked = 0.0
        if path:
            self._load(strict=True)

    def _load(self, strict: bool) -> None:
        assert self.path
        # A stat per request cost 1% of the apiserver's time under load: a second is
        # soon enough to see an edited file.
        now = time.monotonic()
        if not strict and now - self._checked < 1.0:
            return
        self._checked = now
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return
            tokens = parse_token_file(Path(self.path).read_text(), self.path)
        except (OSError, ValueError) as exc:
            if strict:
                raise ValueError(f"--token-auth-file {self.path}: {exc}") from None
            log.warning("token file not reloaded, keeping the previous tokens: %s", exc)
            return
        self._tokens, self._stamp = tokens, stamp

    def lookup(self, token: str) -> UserInfo | None:
        if not self.path:
            return None
        self._load(strict=False)
        return self._tokens.get(token)


def user_from_peercert(peercert: dict[str, Any] | None) -> UserInfo | None:
    """The user a verified client certificate names (ssl.getpeercert() form)."""
    if not peercert:
        return None
    cn, orgs = "", []
    for rdn in peercert.get("subject") or ():
        for key, value in rdn:
            if key == "commonName" and not cn:
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    if not cn:
        return None
    return _user(cn, "", orgs)


class Authenticator:
    """Client certificates (when the TLS context verifies them) and tokens."""

    def __init__(self, token_file: str | None = None, client_ca: bool = False) -> None:
        self.tokens = TokenFile(token_file)
        self.client_ca = client_ca
        # ServiceAccount JWTs (tokens.ServiceAccountTokens), when the apiserver has the keys.
        self.service_accounts: Any = None

    @property
    def enabled(self) -> bool:
        return bool(self.tokens.path) or self.client_ca

    def authenticate(self, peercert: dict[str, Any] | None, authorization: str) -> UserInfo | None:
        """The user, or None (anonymous or bad credentials: the caller answers 401)."""
        if not self.enabled:
            return UNAUTHENTICATED_ADMIN
        if self.client_ca:
            user = user_from_peercert(peercert)
            if user is not None:
                return user
        if authorization[:7].lower() == "bearer ":
            token = authorization[7:].strip()
            if token:
                return self.tokens.lookup(token)
        return None

    async def authenticate_request(self, peercert: dict[str, Any] | None, authorization: str,
                                   registry: Any) -> UserInfo | None:
        """authenticate(), then a ServiceAccount token: a JWT this apiserver signed whose
        ServiceAccount and bound object still exist (that check reads the store)."""
        user = self.authenticate(peercert, authorization)
        if user is None and self.service_accounts is not None and authorization[:7].lower() == "bearer ":
            token = authorization[7:].strip()
            if token.count(".") == 2:
                user = await self.service_accounts.authenticate(token, registry)
        return user
