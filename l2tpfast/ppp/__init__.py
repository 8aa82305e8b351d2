"""PPP over L2TP sessions, sans-IO (RFC 1661, 1662, 1332, 1877, 5072, 1334, 1994, 2759).

``constants`` and ``frame`` are the codec; ``fsm`` is the option negotiation automaton of
RFC 1661 4; ``lcp``, ``ipcp`` and ``ipv6cp`` give it each protocol's options; ``auth/`` holds
PAP, CHAP-MD5 and MS-CHAPv2 for both ends; ``link`` puts them together into the phases of
RFC 1661 3.2 for one session. Nothing here reads a clock or touches a socket.
"""
