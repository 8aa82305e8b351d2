"""A users file: the simplest :class:`~l2tpfast.ppp.auth.base.AuthBackend`.

One user per line: ``username password [ipv4-address]``. Fields are separated by whitespace. A
field in double quotes may hold spaces and ``#``; inside quotes ``\\"`` is a quote and ``\\\\`` a
backslash. Outside quotes ``#`` starts a comment, so a password holding ``#`` must be quoted.
Blank lines are ignored. The address, when given, is the one IPCP hands that user
(``framed_address``, RFC 1332 3.3)::

    # name        password            address
    alice         s3cret              10.100.0.7
    "bob smith"   "pass with \\"q\\""

It verifies PAP (RFC 1334 2.2.1) by comparing passwords, CHAP-MD5 (RFC 1994 4.1) and MS-CHAPv2
(RFC 2759 8.1) by computing the Response the user's password gives, and it returns the MS-CHAPv2
authenticator response (RFC 2759 8.7). An unknown user and a wrong password get the same
answer, so a caller cannot tell which names exist. A name sent as ``DOMAIN\\user`` (RFC 2759 4)
that is not in the file is looked up as ``user``. Passwords never appear in a message or repr.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from l2tpfast.errors import ConfigError
from l2tpfast.ppp.auth.base import AuthDecision, AuthRequest, ChapRequest, MsChapV2Request, PapRequest
from l2tpfast.ppp.auth.chap import chap_md5_response
from l2tpfast.ppp.auth.mschapv2 import generate_authenticator_response, generate_nt_response

REJECTED = "authentication failed"


@dataclass(frozen=True, slots=True)
class _User:
    password: str
    address: IPv4Address | None
    line: int

    def __repr__(self) -> str:
        return f"_User(address={self.address}, line={self.line})"


def split_fields(line: str, key: str) -> list[str]:
    """The fields of one line, quotes and escapes resolved, the comment dropped."""
    fields: list[str] = []
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c.isspace():
            i += 1
        elif c == "#":
            break
        elif c == '"':
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise ConfigError(key, "a quoted field is not closed", 'end it with " on the same line')
                c = line[i]
                if c == "\\":
                    escaped = line[i + 1 : i + 2]
                    if escaped not in ('"', "\\"):
                        raise ConfigError(
                            key, "a backslash in quotes escapes nothing", 'write \\" for a quote, \\\\ for \\'
                        )
                    chars.append(escaped)
                    i += 2
                elif c == '"':
                    i += 1
                    break
                else:
                    chars.append(c)
                    i += 1
            if i < n and not line[i].isspace() and line[i] != "#":
                raise ConfigError(key, "text right after a closing quote", "put a space between the fields")
            fields.append("".join(chars))
        else:
            start = i
            while i < n and not line[i].isspace() and line[i] not in '#"':
                i += 1
            if i < n and line[i] == '"':
                raise ConfigError(key, "a quote inside an unquoted field", "put the whole field in quotes")
            fields.append(line[start:i])
    return fields


class UsersFile:
    """Users, passwords and fixed addresses from a text file (see the module docstring)."""

    def __init__(self, users: dict[str, _User], path: Path | None = None, source: str = "<string>") -> None:
        self._users = users
        self.path = path
        #: Where the users came from, as errors and the repr name it.
        self.source = str(path) if path is not None else source

    @classmethod
    def load(cls, path: str | Path) -> UsersFile:
        path = Path(path)
        return cls(_parse(_read(path), str(path)), path)

    @classmethod
    def parse(cls, text: str, source: str = "<string>") -> UsersFile:
        return cls(_parse(text, source), source=source)

    def reload(self) -> None:
        """Read the same file again; on any error the users stay as they were."""
        if self.path is None:
            raise ConfigError("users", "this users list was parsed from a string", "use UsersFile.load(path)")
        self._users = _parse(_read(self.path), str(self.path))

    def __len__(self) -> int:
        return len(self._users)

    def __contains__(self, username: object) -> bool:
        return username in self._users

    def __repr__(self) -> str:
        return f"UsersFile(path={self.source!r}, users={len(self._users)})"

    def _find(self, username: str) -> _User | None:
        user = self._users.get(username)
        if user is None and "\\" in username:
            user = self._users.get(username.rpartition("\\")[2])
        return user

    def authenticate(self, request: AuthRequest) -> AuthDecision:
        user = self._find(request.username)
        if user is None:
            return AuthDecision(False, REJECTED)
        secret = user.password.encode("utf-8")
        if isinstance(request, PapRequest):
            ok = hmac.compare_digest(secret, request.password)
            return self._decide(ok, user)
        if isinstance(request, ChapRequest):
            expected = chap_md5_response(request.identifier, secret, request.challenge)
            return self._decide(hmac.compare_digest(expected, request.response), user)
        if isinstance(request, MsChapV2Request):
            # RFC 2759 8.1: the peer hashed the name it sent, less any domain.
            expected = generate_nt_response(
                request.authenticator_challenge, request.peer_challenge, request.username, user.password
            )
            if not hmac.compare_digest(expected, request.nt_response):
                return AuthDecision(False, REJECTED)
            proof = generate_authenticator_response(
                user.password,
                request.nt_response,
                request.peer_challenge,
                request.authenticator_challenge,
                request.username,
            )
            return AuthDecision(True, authenticator_response=proof, framed_address=user.address)
        return AuthDecision(False, REJECTED)

    @staticmethod
    def _decide(ok: bool, user: _User) -> AuthDecision:
        if not ok:
            return AuthDecision(False, REJECTED)
        return AuthDecision(True, framed_address=user.address)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            str(path), f"cannot read the users file ({exc.strerror})", "check the path"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "the users file is not UTF-8", "save it as UTF-8") from None


def _parse(text: str, source: str) -> dict[str, _User]:
    users: dict[str, _User] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        key = f"{source}:{number}"
        fields = split_fields(line, key)
        if not fields:
            continue
        if len(fields) == 1:
            raise ConfigError(key, "a user without a password", "write: username password [ipv4-address]")
        if len(fields) > 3:
            raise ConfigError(
                key, f"{len(fields)} fields, at most 3", "quote a name or password that holds spaces"
            )
        username, password = fields[0], fields[1]
        if not username:
            raise ConfigError(key, "an empty username", "give the user a name")
        address = None
        if len(fields) == 3:
            try:
                address = IPv4Address(fields[2])
            except ValueError:
                raise ConfigError(
                    key, f"{fields[2]!r} is not an IPv4 address", "write it as 10.100.0.7, or leave it out"
                ) from None
        if username in users:
            raise ConfigError(
                key,
                f"user {username!r} is already defined on line {users[username].line}",
                "remove one of the two lines",
            )
        users[username] = _User(password, address, number)
    return users
