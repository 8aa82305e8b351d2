"""The users file: its syntax, its errors, and PAP, CHAP-MD5 and MS-CHAPv2 verification against it."""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from l2tpfast.aaa import UsersFile
from l2tpfast.aaa.users import split_fields
from l2tpfast.errors import ConfigError
from l2tpfast.ppp.auth import AuthDecision, ChapRequest, MsChapV2Request, PapRequest
from l2tpfast.ppp.auth.mschapv2 import generate_nt_response

TEXT = r"""
# name          password                 address
alice           s3cret                   10.100.0.7
"bob smith"     "pass with \"q\" and \\" # a comment after the fields
carol           "hash#inside"
  dave	tab-separated	10.100.0.8   # tabs and indentation

User            clientPass
"""

# RFC 2759 9.2
AUTH_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
AUTH_RESPONSE = "S=407A5589115FD0D6209F510FE9C04566932CDA56"
REJECTED = AuthDecision(False, "authentication failed")


@pytest.fixture
def users() -> UsersFile:
    return UsersFile.parse(TEXT, "users.txt")


# --- syntax ------------------------------------------------------------------------------------


def test_parse(users: UsersFile) -> None:
    assert len(users) == 5
    for name in ("alice", "bob smith", "carol", "dave", "User"):
        assert name in users
    assert repr(users) == "UsersFile(path='users.txt', users=5)"


def test_quotes_escapes_and_comments() -> None:
    assert split_fields(r'"bob smith" "pass with \"q\" and \\" # c', "k") == [
        "bob smith",
        'pass with "q" and \\',
    ]
    assert split_fields('carol "hash#inside"', "k") == ["carol", "hash#inside"]
    assert split_fields("erin pw#comment", "k") == ["erin", "pw"]
    assert split_fields('"" x', "k") == ["", "x"]
    assert split_fields("   # only a comment", "k") == []
    assert split_fields("", "k") == []


def test_passwords_as_parsed(users: UsersFile) -> None:
    assert users.authenticate(PapRequest("bob smith", b'pass with "q" and \\')).accepted
    assert users.authenticate(PapRequest("carol", b"hash#inside")).accepted
    assert users.authenticate(PapRequest("dave", b"tab-separated")).accepted


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("alice s3cret\nbob\n", 2, "without a password"),
        ("alice s3cret\n\n# x\nalice other\n", 4, "already defined on line 1"),
        ("alice s3cret 10.0.0.300\n", 1, "not an IPv4 address"),
        ("alice s3cret ::1\n", 1, "not an IPv4 address"),
        ('alice "s3cret\n', 1, "not closed"),
        ('alice "s3\\cret"\n', 1, "escapes nothing"),
        ('alice "s3cret\\', 1, "escapes nothing"),
        ("alice s3cret 10.0.0.1 extra\n", 1, "at most 3"),
        ('alice "s3cret"x\n', 1, "after a closing quote"),
        ('alice s3"cret"\n', 1, "quote inside an unquoted field"),
        ('"" s3cret\n', 1, "empty username"),
    ],
)
def test_errors_name_file_line_and_fix(text: str, line: int, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        UsersFile.parse(text, "/etc/l2tpfast/users")
    assert info.value.key == f"/etc/l2tpfast/users:{line}"
    assert words in str(info.value)
    assert info.value.hint  # every error says how to fix it
    assert "s3cret" not in str(info.value) and "s3cret" not in info.value.hint


def test_default_source_name() -> None:
    with pytest.raises(ConfigError) as info:
        UsersFile.parse("x")
    assert info.value.key == "<string>:1"


def test_load_and_reload(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("alice s3cret\n", encoding="utf-8")
    users = UsersFile.load(path)
    assert repr(users) == f"UsersFile(path={str(path)!r}, users=1)"
    assert users.authenticate(PapRequest("alice", b"s3cret")).accepted
    path.write_text("alice n3w\nbob pw\n", encoding="utf-8")
    users.reload()
    assert len(users) == 2
    assert not users.authenticate(PapRequest("alice", b"s3cret")).accepted
    assert users.authenticate(PapRequest("alice", b"n3w")).accepted
    # A broken file on reload leaves the users as they were.
    path.write_text("alice n3w\nalice again\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"users:2"):
        users.reload()
    assert len(users) == 2 and users.authenticate(PapRequest("bob", b"pw")).accepted


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        UsersFile.load(tmp_path / "missing")
    (tmp_path / "latin1").write_bytes(b"j\xf6rg pw\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        UsersFile.load(tmp_path / "latin1")
    with pytest.raises(ConfigError, match="parsed from a string"):
        UsersFile.parse("a b").reload()


def test_repr_never_shows_passwords(users: UsersFile) -> None:
    text = repr(users) + str(users) + repr(users._users)
    for secret in ("s3cret", "hash#inside", "clientPass", "tab-separated"):
        assert secret not in text


# --- verification ------------------------------------------------------------------------------


def test_pap(users: UsersFile) -> None:
    decision = users.authenticate(PapRequest("alice", b"s3cret"))
    assert decision == AuthDecision(True, framed_address=IPv4Address("10.100.0.7"))
    assert users.authenticate(PapRequest("carol", b"hash#inside")).framed_address is None
    assert users.authenticate(PapRequest("alice", b"s3cre")) == REJECTED
    assert users.authenticate(PapRequest("alice", b"S3CRET")) == REJECTED
    # An unknown user gets exactly the answer a wrong password gets.
    assert users.authenticate(PapRequest("mallory", b"s3cret")) == REJECTED


def test_chap_md5(users: UsersFile) -> None:
    challenge = bytes(range(16))
    response = hashlib.md5(b"\x07" + b"s3cret" + challenge).digest()
    decision = users.authenticate(ChapRequest("alice", 7, challenge, response))
    assert decision.accepted and decision.framed_address == IPv4Address("10.100.0.7")
    assert users.authenticate(ChapRequest("alice", 8, challenge, response)) == REJECTED
    assert users.authenticate(ChapRequest("alice", 7, challenge[::-1], response)) == REJECTED
    assert users.authenticate(ChapRequest("alice", 7, challenge, response[:8])) == REJECTED
    assert users.authenticate(ChapRequest("mallory", 7, challenge, response)) == REJECTED


def test_mschapv2_rfc2759_vector(users: UsersFile) -> None:
    request = MsChapV2Request("User", 1, AUTH_CHALLENGE, PEER_CHALLENGE, NT_RESPONSE)
    decision = users.authenticate(request)
    assert decision == AuthDecision(True, authenticator_response=AUTH_RESPONSE)


def test_mschapv2_rejections(users: UsersFile) -> None:
    bad = bytes(24)
    assert users.authenticate(MsChapV2Request("User", 1, AUTH_CHALLENGE, PEER_CHALLENGE, bad)) == REJECTED
    assert (
        users.authenticate(MsChapV2Request("Nobody", 1, AUTH_CHALLENGE, PEER_CHALLENGE, NT_RESPONSE))
        == REJECTED
    )
    # The user name is part of the hash (RFC 2759 8.2): alice cannot use User's response.
    assert (
        users.authenticate(MsChapV2Request("alice", 1, AUTH_CHALLENGE, PEER_CHALLENGE, NT_RESPONSE))
        == REJECTED
    )


def test_mschapv2_with_domain_prefix(users: UsersFile) -> None:
    nt = generate_nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, "alice", "s3cret")
    decision = users.authenticate(MsChapV2Request("BIGCO\\alice", 1, AUTH_CHALLENGE, PEER_CHALLENGE, nt))
    assert decision.accepted and decision.framed_address == IPv4Address("10.100.0.7")
    assert decision.authenticator_response is not None and len(decision.authenticator_response) == 42


def test_exact_name_wins_over_domain_fallback() -> None:
    users = UsersFile.parse('"CORP\\\\alice" one\nalice two\n')
    assert users.authenticate(PapRequest("CORP\\alice", b"one")).accepted
    assert not users.authenticate(PapRequest("CORP\\alice", b"two")).accepted
    assert users.authenticate(PapRequest("OTHER\\alice", b"two")).accepted
