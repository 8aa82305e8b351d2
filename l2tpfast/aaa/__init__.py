"""Authentication backends and address pools for PPP sessions.

``users`` is the users file (an AuthBackend for PAP, CHAP-MD5 and MS-CHAPv2); ``pool`` hands out
IPv4 addresses (RFC 1332 3.3).
"""

from __future__ import annotations

from l2tpfast.aaa.users import UsersFile

__all__ = ["UsersFile"]
