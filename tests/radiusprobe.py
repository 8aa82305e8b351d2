"""Drive l2tpfast's RADIUS shell (runtime/radius.py) inside a network namespace; print JSON.

Run by tests/interop/test_radius_freeradius.py as ``ip netns exec NS python radiusprobe.py SPEC``,
SPEC a JSON object:

- client mode: ``{"auth": [[host, port], ...], "acct": [...], "secret": "...", "timeout": 1.0,
  "retries": 2, "ops": [...]}``. Each op is ``{"op": "pap" | "chap" | "mschapv2", "user", "password"}``
  or ``{"op": "acct", "status", "session", ...counters}``; the result (one JSON document on stdout)
  is a list with one entry per op, then the client's counters.
- DAE mode: ``{"mode": "dae", "port": 3799, "secret": "...", "known": ["sess-1"], "seconds": 20}``
  prints "listening on HOST:PORT", then one JSON line per request it answers, until SIGTERM or
  ``seconds`` pass.

Logging goes to stderr at DEBUG, so the test can check that no secret appears there.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
import sys
from typing import Any

from l2tpfast.aaa.radius import (
    AccountingRecord,
    DaeRequest,
    DaeServer,
    ErrorCause,
    RadiusServer,
    RadiusSettings,
    SessionInfo,
)
from l2tpfast.ppp.auth.base import ChapRequest, MsChapV2Request, PapRequest
from l2tpfast.ppp.auth.mschapv2 import generate_nt_response
from l2tpfast.runtime.radius import DaeListener, RadiusService

#: No run of this probe may take longer.
DEADLINE = 60.0


def _session(op: dict[str, Any]) -> SessionInfo:
    return SessionInfo(
        acct_session_id=op.get("session", "probe-session"),
        nas_port=int(op.get("nas_port", 1)),
        username=op.get("user", "alice"),
        calling_station_id=op.get("calling"),
        agent_circuit_id=op["circuit"].encode() if "circuit" in op else None,
    )


async def _auth(service: RadiusService, op: dict[str, Any]) -> dict[str, Any]:
    user, password = op["user"], op["password"]
    extra: dict[str, Any] = {}
    request: PapRequest | ChapRequest | MsChapV2Request
    if op["op"] == "pap":
        request = PapRequest(user, password.encode(), 1)
    elif op["op"] == "chap":
        challenge = os.urandom(16)
        identifier = 23
        response = hashlib.md5(bytes([identifier]) + password.encode() + challenge).digest()
        request = ChapRequest(user, identifier, challenge, response)
    else:
        challenge, peer = os.urandom(16), os.urandom(16)
        nt_response = generate_nt_response(challenge, peer, user, password)
        request = MsChapV2Request(user, 42, challenge, peer, nt_response)
        extra = {"challenge": challenge.hex(), "peer_challenge": peer.hex(), "nt_response": nt_response.hex()}
    reply = await service.authenticate(request, _session(op))
    if reply is None:
        return {"answered": False, **extra}
    return {
        "answered": True,
        "accepted": reply.accepted,
        "code": reply.code,
        "framed_address": None if reply.framed_address is None else str(reply.framed_address),
        "reply_message": reply.reply_message,
        "ms_chap2_success": None if reply.ms_chap2_success is None else reply.ms_chap2_success.decode(),
        "ms_chap_error": reply.ms_chap_error,
        "attribute_types": sorted({(v, t) for v, t, _ in reply.attributes}),
        **extra,
    }


async def _acct(service: RadiusService, op: dict[str, Any]) -> dict[str, Any]:
    record = AccountingRecord(
        status=op["status"],
        session=_session(op),
        session_time=int(op.get("session_time", 0)),
        input_octets=int(op.get("input_octets", 0)),
        output_octets=int(op.get("output_octets", 0)),
        input_packets=int(op.get("input_packets", 0)),
        output_packets=int(op.get("output_packets", 0)),
        terminate_cause=op.get("terminate_cause"),
        class_values=tuple(value.encode() for value in op.get("class", ())),
    )
    return {"answered": await service.account(record)}


async def client_mode(spec: dict[str, Any]) -> dict[str, Any]:
    secret = spec["secret"].encode()
    settings = RadiusSettings(
        auth_servers=tuple(RadiusServer(h, p, secret) for h, p in spec.get("auth", [])),
        acct_servers=tuple(RadiusServer(h, p, secret) for h, p in spec.get("acct", [])),
        timeout=float(spec.get("timeout", 1.0)),
        retries=int(spec.get("retries", 2)),
        nas_identifier="l2tpfast-probe",
    )
    service = RadiusService(settings)
    results = []
    try:
        for op in spec["ops"]:
            if op["op"] == "acct":
                results.append(await _acct(service, op))
            else:
                results.append(await _auth(service, op))
    finally:
        counters = service.counters
        service.close()
    return {"results": results, "counters": counters}


async def dae_mode(spec: dict[str, Any]) -> None:
    known = set(spec.get("known", ()))
    dae = DaeServer({"127.0.0.1": spec["secret"].encode()})

    def on_request(request: DaeRequest) -> tuple[bool, int | None]:
        ack = request.acct_session_id in known
        verdict = (ack, None if ack else int(ErrorCause.SESSION_CONTEXT_NOT_FOUND))
        line = {"kind": request.kind, "acct_session_id": request.acct_session_id, "ack": ack}
        print(json.dumps(line), flush=True)
        return verdict

    listener = DaeListener(dae, "127.0.0.1", int(spec.get("port", 3799)), on_request)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    host, port = listener.address
    print(f"listening on {host}:{port}", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), float(spec.get("seconds", 20)))
    except TimeoutError:
        pass
    finally:
        listener.close()
        print(json.dumps({"counters": dae.counters}), flush=True)


async def main(spec: dict[str, Any]) -> None:
    if spec.get("mode") == "dae":
        await dae_mode(spec)
    else:
        print(json.dumps(await asyncio.wait_for(client_mode(spec), DEADLINE)), flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
    asyncio.run(main(json.loads(sys.argv[1])))
