"""MS-CHAPv2, both ends (RFC 2759 3-6) and its hash functions (RFC 2759 8.1-8.8).

Theory of operation. MS-CHAPv2 is CHAP (RFC 1994) with other contents, so both ends reuse the
flow of :mod:`~l2tpfast.ppp.auth.chap` and change four things. The Challenge Value is 16 octets
(RFC 2759 3). The Response Value is 49 octets: Peer-Challenge, 8 zero octets, NT-Response, Flags
(RFC 2759 4). Success carries "S=<40 hex> M=<message>", the authenticator's proof that it knows
the password too, and the peer MUST check it and end the session when it is missing or wrong
(RFC 2759 5). Failure carries "E=691 R=0 C=<32 hex> V=3 M=<message>" (RFC 2759 6); we never
allow a retry (R=0) and never offer Change-Password (RFC 2759 7), so a failed peer starts over.

Servers in the field bend the Success format: Windows Server 2019 leaves out the space before
"M=", others send lower-case hex, a trailing NUL or newline, no "M=" at all, or put something
before "S=". The peer accepts all of these as long as "S=" and 40 hex digits are there, and
still checks those digits; that is the part that matters.

The hash functions are pure and named after RFC 2759 section 8. DES and MD4 come from
pycryptodome: OpenSSL 3 no longer offers MD4 through :mod:`hashlib`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

from Crypto.Cipher import DES
from Crypto.Hash import MD4

from l2tpfast.ppp.auth.base import (
    DEFAULT_SETTINGS,
    MSCHAPV2_RESPONSE_LENGTH,
    AuthDecision,
    AuthRequest,
    AuthSettings,
    MsChapV2Request,
    Outbox,
    Rand,
    decode_message,
    encode_message,
    encode_name,
)
from l2tpfast.ppp.auth.chap import CHALLENGE_LENGTH, ChapAuthenticator, ChapPeer, build_value_name
from l2tpfast.ppp.constants import AuthMethod, ChapCode

# RFC 2759 8.7
_MAGIC1 = b"Magic server to client signing constant"
_MAGIC2 = b"Pad to make it do more than one iteration"

_AUTH_STRING = re.compile(rb"[Ss]=([0-9A-Fa-f]{40})")
_ERROR_CODE = re.compile(rb"E=(\d+)")


# --- RFC 2759 8: the hash functions ------------------------------------------------------------


def _user_part(username: str | bytes) -> bytes:
    """RFC 2759 8.2: the user name "excluding any prepended domain name" (BIGCO\\johndoe)."""
    octets = encode_name(username) if isinstance(username, str) else username
    return octets.rpartition(b"\\")[2]


def nt_password_hash(password: str) -> bytes:
    """RFC 2759 8.3: MD4 of the password in UTF-16LE (Unicode), without a terminating 0."""
    return MD4.new(password.encode("utf-16-le", "surrogatepass")).digest()


def hash_nt_password_hash(password_hash: bytes) -> bytes:
    """RFC 2759 8.4."""
    return MD4.new(password_hash).digest()


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes, username: str | bytes) -> bytes:
    """RFC 2759 8.2: the first 8 octets of SHA-1(PeerChallenge, AuthenticatorChallenge, UserName)."""
    return hashlib.sha1(peer_challenge + authenticator_challenge + _user_part(username)).digest()[:8]


def expand_des_key(key: bytes) -> bytes:
    """RFC 2759 8.6, 9.3: 7 octets (56 bits) to an 8-octet DES key, 7 bits and an odd-parity bit each."""
    bits = int.from_bytes(key[:7], "big")
    out = bytearray()
    for i in range(8):
        octet = ((bits >> (49 - 7 * i)) & 0x7F) << 1
        out.append(octet | (bin(octet).count("1") + 1) % 2)
    return bytes(out)


def des_encrypt(clear: bytes, key: bytes) -> bytes:
    """RFC 2759 8.6: one DES block in ECB mode under a 7-octet key."""
    return DES.new(expand_des_key(key), DES.MODE_ECB).encrypt(clear)


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    """RFC 2759 8.5: the 8-octet challenge under each third of the zero-padded 21-octet hash."""
    z = password_hash.ljust(21, b"\x00")
    return des_encrypt(challenge, z[0:7]) + des_encrypt(challenge, z[7:14]) + des_encrypt(challenge, z[14:21])


def generate_nt_response(
    authenticator_challenge: bytes, peer_challenge: bytes, username: str | bytes, password: str
) -> bytes:
    """RFC 2759 8.1: the 24-octet NT-Response."""
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    return challenge_response(challenge, nt_password_hash(password))


def generate_authenticator_response(
    password: str,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    username: str | bytes,
) -> str:
    """RFC 2759 8.7: "S=" and 40 upper-case hexadecimal digits."""
    password_hash_hash = hash_nt_password_hash(nt_password_hash(password))
    digest = hashlib.sha1(password_hash_hash + nt_response + _MAGIC1).digest()
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    digest = hashlib.sha1(digest + challenge + _MAGIC2).digest()
    return "S=" + digest.hex().upper()


def check_authenticator_response(
    password: str,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    username: str | bytes,
    received: str,
) -> bool:
    """RFC 2759 8.8, in constant time; the hex digits may be of either case."""
    expected = generate_authenticator_response(
        password, nt_response, peer_challenge, authenticator_challenge, username
    )
    return hmac.compare_digest(expected.encode(), received.strip().upper().encode("ascii", "replace"))


# --- RFC 2759 5, 6: the messages ---------------------------------------------------------------


def build_success_message(authenticator_response: str, message: str) -> bytes:
    """RFC 2759 5: "S=<auth_string> M=<message>"."""
    return encode_message(f"{authenticator_response} M={message}")


def build_failure_message(challenge: bytes, message: str = "Authentication failed") -> bytes:
    """RFC 2759 6: E=691 (ERROR_AUTHENTICATION_FAILURE), no retry, password change version 3."""
    return encode_message(f"E=691 R=0 C={challenge.hex().upper()} V=3 M={message}")


def parse_success_message(data: bytes) -> tuple[str | None, str]:
    """("S=" + 40 upper-case hex or None, the message) of a Success, tolerating field quirks."""
    match = _AUTH_STRING.search(data)
    if match is None:
        return None, decode_message(data)
    rest = data[match.end() :]
    at = rest.find(b"M=")
    message = decode_message(rest[at + 2 :] if at >= 0 else rest)
    return "S=" + match.group(1).decode("ascii").upper(), message


def parse_failure_message(data: bytes) -> tuple[int | None, str]:
    """(the E= error code or None, the M= message or the whole text) of a Failure (RFC 2759 6)."""
    match = _ERROR_CODE.search(data)
    error = int(match.group(1)) if match is not None and len(match.group(1)) < 10 else None
    at = data.find(b"M=")
    return error, decode_message(data[at + 2 :] if at >= 0 else data)


def _normalize_authenticator_response(value: str | None) -> str | None:
    """A backend's "S=<40 hex>" (or the bare 40 hex a RADIUS attribute holds), upper-cased."""
    if value is None:
        return None
    match = re.fullmatch(r"(?:[Ss]=)?([0-9A-Fa-f]{40})", value.strip())
    return None if match is None else "S=" + match.group(1).upper()


# --- the two ends ------------------------------------------------------------------------------


class MsChapV2Authenticator(ChapAuthenticator):
    method = AuthMethod.MSCHAPV2

    def _make_request(self, identifier: int, value: bytes, username: str) -> AuthRequest | None:
        # RFC 2759 4: anything but the 49-octet layout cannot be verified; drop it.
        if len(value) != MSCHAPV2_RESPONSE_LENGTH:
            return None
        return MsChapV2Request(username, identifier, self.challenge, value[:16], value[24:48])

    def _make_reply(self, decision: AuthDecision) -> tuple[bool, int, bytes, str]:
        if decision.accepted:
            proof = _normalize_authenticator_response(decision.authenticator_response)
            if proof is not None:
                data = build_success_message(proof, decision.message or "Access granted")
                return True, ChapCode.SUCCESS, data, decision.message
            # RFC 2759 5: a peer MUST end the session on a Success without the authenticator
            # response, so sending one would only fail later and less clearly.
            return False, ChapCode.FAILURE, build_failure_message(self.challenge), "no authenticator response"
        text = decision.message or "authentication failed"
        return False, ChapCode.FAILURE, build_failure_message(self.challenge), text


class MsChapV2Peer(ChapPeer):
    method = AuthMethod.MSCHAPV2

    def __init__(
        self,
        username: str,
        password: str,
        outbox: Outbox,
        settings: AuthSettings = DEFAULT_SETTINGS,
        rand: Rand = os.urandom,
    ) -> None:
        super().__init__(username, password, outbox, settings, rand)
        #: Identifier -> the authenticator response a Success to that Response must carry.
        self._expected: dict[int, str] = {}

    def _make_response(self, identifier: int, challenge: bytes) -> bytes | None:
        if len(challenge) != CHALLENGE_LENGTH:
            return None  # RFC 2759 3: "MS-CHAP-V2 authenticators send an 16-octet challenge"
        peer_challenge = self._rand(16)
        nt_response = generate_nt_response(challenge, peer_challenge, self.username, self._password)
        self._expected[identifier] = generate_authenticator_response(
            self._password, nt_response, peer_challenge, challenge, self.username
        )
        # RFC 2759 4: Peer-Challenge, 8 reserved zero octets, NT-Response, Flags (zero).
        value = peer_challenge + bytes(8) + nt_response + b"\x00"
        return build_value_name(value, encode_name(self.username))

    def _handle_success(self, identifier: int, data: bytes) -> None:
        received, message = parse_success_message(data)
        if received is None:
            # RFC 2759 5: "If the authenticator response is either missing or incorrect, the
            # peer MUST end the session."
            self._finish(False, self.username, "authenticator response missing")
        elif not hmac.compare_digest(received.encode(), self._expected[identifier].encode()):
            self._finish(False, self.username, "authenticator response mismatch")
        else:
            self._finish(True, self.username, message)

    def _handle_failure(self, data: bytes) -> None:
        error, message = parse_failure_message(data)
        text = message or "authentication failed"
        self._finish(False, self.username, text if error is None else f"E={error}: {text}")
