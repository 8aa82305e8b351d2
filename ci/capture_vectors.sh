#!/usr/bin/env bash
# Capture real L2TPv2 control traffic between real peers, as test vectors.
#
#   bash ci/capture_vectors.sh [OUTDIR]        (default OUTDIR: tests/vectors of this repo)
#
# Needs root and the Debian packages xl2tpd, l2tpns, freeradius, tcpdump, tshark (to verify)
# and ethtool (to switch off checksum offload on the veth pair, so that captured UDP
# checksums are the real ones; without it the script still runs and says so).
# Every scenario runs in a fresh pair of network namespaces joined by a veth pair
# (LAC 192.0.2.1, LNS 192.0.2.2), captures only UDP port 1701 with tcpdump on the LNS side
# (classic pcap, Ethernet link type) and deletes the namespaces again, also on failure.
# Every wait is bounded. Set CAPTURE_HELLO=0 to skip the ~65 s idle scenario that waits
# for Hello messages. Set CAPTURE_KEEP=1 to keep the work directory (daemon logs).
# CAPTURE_ONLY="l2tpns xl2tpd" runs only the named scenarios (scenario_* functions below).
#
# Scenarios (file names in OUTDIR):
#   xl2tpd-lac_l2tpns-lns.pcap         xl2tpd LAC (challenge) -> l2tpns LNS (+FreeRADIUS):
#                                       tunnel + session up, l2tpns LCP ConfReq (data),
#                                       pppd fails -> CDN, then "d" on the LAC -> StopCCN
#   xl2tpd-lac_xl2tpd-lns_hidden.pcap  xl2tpd LAC -> xl2tpd LNS, both challenge + hidden bit,
#                                       session up, CDN (from whichever pppd fails first),
#                                       then "d" on the LAC -> StopCCN
#   xl2tpd-lac_l2tpns-lns_badsecret.pcap  LAC with the wrong secret: tunnel authentication
#                                       of the SCCRP fails -> StopCCN from the LAC
#   xl2tpd-lac_xl2tpd-lns_badsecret.pcap  LNS challenges a LAC with the wrong secret:
#                                       SCCCN fails authentication -> StopCCN from the LNS
#   xl2tpd-lac_l2tpns-lns_hello.pcap   as the first, but the tunnel is left idle after the CDN
#                                       until xl2tpd's Hello (60 s), then "d" -> StopCCN
# The tunnel secret is l2tpfast-test-secret (the tests check Challenge Responses with it).
set -euo pipefail

OUTDIR=${1:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/vectors"}
SECRET=l2tpfast-test-secret
BAD_SECRET=wrong-secret
CAPTURE_HELLO=${CAPTURE_HELLO:-1}
CAPTURE_KEEP=${CAPTURE_KEEP:-0}
LAC_IP=192.0.2.1
LNS_IP=192.0.2.2

for tool in ip tcpdump xl2tpd l2tpns freeradius; do
    command -v "$tool" >/dev/null || { echo "capture_vectors: missing $tool; install: bash ci/install-system-deps.sh ci/peer-packages.txt" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "capture_vectors: must run as root" >&2; exit 2; }

SUF=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
NS_LAC="l2f-lac-$SUF"
NS_LNS="l2f-lns-$SUF"
VETH_LAC="vlac$SUF"
VETH_LNS="vlns$SUF"
WORK=$(mktemp -d /tmp/l2f-capture.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$OUTDIR"
PIDS=()
WRITTEN=()

log() { printf '[capture %s] %s\n' "$(date +%T)" "$*" >&2; }

# Kill one process we started, by pid: TERM, wait up to 3 s, then KILL.
stop_pid() {
    local pid=$1 sig=${2:-TERM} i
    kill -0 "$pid" 2>/dev/null || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

lab_down() {
    local ns pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    PIDS=()
    for ns in "$NS_LAC" "$NS_LNS"; do
        if ip netns list | grep -qw "$ns"; then
            # whatever still runs inside our own namespaces (e.g. a pppd xl2tpd forked)
            for pid in $(ip netns pids "$ns" 2>/dev/null); do stop_pid "$pid" KILL; done
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    lab_down
    if [ "$CAPTURE_KEEP" = 1 ] || [ "$rc" != 0 ]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

lab_up() {
    lab_down
    ip netns add "$NS_LAC"
    ip netns add "$NS_LNS"
    ip link add "$VETH_LAC" type veth peer name "$VETH_LNS"
    ip link set "$VETH_LAC" netns "$NS_LAC"
    ip link set "$VETH_LNS" netns "$NS_LNS"
    ip -n "$NS_LAC" addr add "$LAC_IP/24" dev "$VETH_LAC"
    ip -n "$NS_LNS" addr add "$LNS_IP/24" dev "$VETH_LNS"
    ip -n "$NS_LAC" link set lo up
    ip -n "$NS_LNS" link set lo up
    ip -n "$NS_LAC" link set "$VETH_LAC" up
    ip -n "$NS_LNS" link set "$VETH_LNS" up
    # Without this the kernel leaves UDP checksums to "hardware" (CHECKSUM_PARTIAL), veth
    # never fills them in, and the capture shows a bad checksum on every datagram that
    # l2tpns sends. xl2tpd sends checksum 0 (no checksum) on its own either way.
    if command -v ethtool >/dev/null; then
        ip netns exec "$NS_LAC" ethtool -K "$VETH_LAC" tx off >/dev/null
        ip netns exec "$NS_LNS" ethtool -K "$VETH_LNS" tx off >/dev/null
    else
        log "ethtool missing: UDP checksums of l2tpns datagrams will be captured unfinished"
    fi
}

# Start a command in a namespace in the background; its pid goes into PIDS and $LAST_PID.
spawn() {
    local ns=$1 logfile=$2
    shift 2
    # own session: l2tpns signals its whole process group when it shuts down
    ip netns exec "$ns" setsid "$@" >"$logfile" 2>&1 </dev/null &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# wait_for SECONDS FILE REGEX: poll until FILE matches REGEX; returns 1 on timeout.
wait_for() {
    local limit=$1 file=$2 regex=$3 deadline
    deadline=$((SECONDS + limit))
    while ((SECONDS < deadline)); do
        if [ -f "$file" ] && grep -Eq "$regex" "$file"; then return 0; fi
        sleep 0.2
    done
    log "timeout (${limit}s) waiting for /$regex/ in $file"
    return 1
}

start_capture() {
    local pcap=$1
    spawn "$NS_LNS" "$pcap.log" tcpdump -i "$VETH_LNS" --immediate-mode -U -s 0 -n -Z root -w "$pcap" udp port 1701
    CAP_PID=$LAST_PID
    wait_for 10 "$pcap.log" 'listening on'
}

stop_capture() {
    local pcap=$1 dest=$2
    sleep 1 # let the last acknowledgements arrive
    stop_pid "$CAP_PID" INT
    cp "$pcap" "$dest"
    WRITTEN+=("$dest")
    log "wrote $dest ($(grep -Eo '[0-9]+ packets captured' "$pcap.log" || echo '? packets'))"
}

write_ppp_options() {
    # pppd cannot run here (no /dev/ppp); keep its options minimal and harmless.
    printf 'noauth\nnodefaultroute\nnodetach\n' >"$WORK/ppp.options"
}

# xl2tpd_lac_conf NAME SECRETFILE HIDDEN CHALLENGE -> config path
xl2tpd_lac_conf() {
    local name=$1 secrets=$2 hidden=$3 challenge=$4 conf="$WORK/$1.lac.conf"
    cat >"$conf" <<EOF
[global]
port = 1701
auth file = $secrets
debug tunnel = yes
debug state = yes
debug avp = yes

[lac $name]
lns = $LNS_IP
autodial = yes
redial = no
challenge = $challenge
hidden bit = $hidden
hostname = lac.l2tpfast.test
name = vector
require authentication = no
ppp debug = no
pppoptfile = $WORK/ppp.options
EOF
    echo "$conf"
}

xl2tpd_lns_conf() {
    local secrets=$1 conf="$WORK/lns.xl2tpd.conf"
    cat >"$conf" <<EOF
[global]
port = 1701
listen-addr = $LNS_IP
auth file = $secrets
debug tunnel = yes
debug state = yes
debug avp = yes

[lns default]
ip range = 10.99.0.10-10.99.0.20
local ip = 10.99.0.1
challenge = yes
hidden bit = yes
hostname = lns.l2tpfast.test
require authentication = no
ppp debug = no
pppoptfile = $WORK/ppp.options
EOF
    echo "$conf"
}

write_secrets() {
    printf '* * %s\n' "$SECRET" >"$WORK/good.secrets"
    printf '* * %s\n' "$BAD_SECRET" >"$WORK/bad.secrets"
    chmod 600 "$WORK/good.secrets" "$WORK/bad.secrets"
}

start_freeradius() {
    local raddb="$WORK/raddb"
    rm -rf "$raddb"
    cp -a /etc/freeradius/3.0 "$raddb"
    # the PPP user l2tpns would authenticate through RADIUS (pppd never gets that far here)
    printf 'vector Cleartext-Password := "vector-password"\n\tFramed-IP-Address = 10.10.10.50\n' \
        >"$raddb/mods-config/files/authorize.vectors"
    cat "$raddb/mods-config/files/authorize" >>"$raddb/mods-config/files/authorize.vectors"
    mv "$raddb/mods-config/files/authorize.vectors" "$raddb/mods-config/files/authorize"
    chown -R freerad:freerad "$raddb"
    spawn "$NS_LNS" "$WORK/freeradius.log" freeradius -X -d "$raddb"
    wait_for 20 "$WORK/freeradius.log" 'Ready to process requests'
}

start_l2tpns() {
    local dir="$WORK/l2tpns"
    rm -rf "$dir"
    mkdir -p "$dir"
    cat >"$dir/l2tpns.cfg" <<EOF
set debug 3
set log_file "$dir/l2tpns.log"
set pid_file "$dir/l2tpns.pid"
set l2tp_secret "$SECRET"
set primary_dns 10.0.0.1
set primary_radius 127.0.0.1
set radius_secret "testing123"
set radius_authtypes "chap,pap"
set bind_address $LNS_IP
set cli_bind_address 127.0.0.1
set cluster_interface $VETH_LNS
EOF
    spawn "$NS_LNS" "$dir/stdout.log" l2tpns -c "$dir/l2tpns.cfg" -h lns.l2tpfast.test
    L2TPNS_LOG="$dir/l2tpns.log"
    # l2tpns answers only once it has elected itself cluster master (about 14 s)
    wait_for 30 "$L2TPNS_LOG" 'declaring myself the master'
}

start_xl2tpd() { # NS NAME CONF SECRETS; logs in $WORK/NAME.xl2tpd.log, control FIFO $WORK/NAME.control
    local ns=$1 name=$2 conf=$3 secrets=$4
    spawn "$ns" "$WORK/$name.xl2tpd.log" xl2tpd -D -c "$conf" -s "$secrets" \
        -p "$WORK/$name.pid" -C "$WORK/$name.control"
}

# ---------------------------------------------------------------------------------------
# Verification with tshark (skipped with a note when tshark is missing).

# summarize PCAP: "COUNT TYPE" lines, ZLB for control messages without AVPs, DATA for data.
summarize() {
    tshark -r "$1" -d udp.port==1701,l2tp -T fields -E occurrence=f \
        -e l2tp.type -e l2tp.avp.message_type 2>/dev/null | awk -F'\t' '
        BEGIN { split("SCCRQ SCCRP SCCCN StopCCN 5 HELLO OCRQ OCRP OCCN ICRQ ICRP ICCN 13 CDN WEN SLI", n, " ") }
        $1 == 0 { c["DATA"]++; next }
        $2 == "" { c["ZLB"]++; next }
        { c[($2 in n) ? n[$2] : "type" $2]++ }
        END { for (k in c) printf "%d %s\n", c[k], k }' | sort -k2
}

# verify PCAP TYPE...: every TYPE present, nothing malformed.
verify() {
    local pcap=$1 summary type malformed
    shift
    if ! command -v tshark >/dev/null; then
        log "tshark missing: $pcap not verified"
        return 0
    fi
    summary=$(summarize "$pcap")
    local checks=()
    if command -v ethtool >/dev/null; then
        checks=(-o ip.check_checksum:TRUE -o udp.check_checksum:TRUE)
    fi
    malformed=$(tshark -r "$pcap" -d udp.port==1701,l2tp "${checks[@]}" \
        -Y '_ws.malformed || _ws.expert.severity >= warning' 2>/dev/null | wc -l)
    log "$(basename "$pcap"): $(echo "$summary" | tr '\n' ' ')malformed/warnings=$malformed"
    [ "$malformed" = 0 ] || { log "FAIL: $pcap has malformed datagrams"; return 1; }
    for type in "$@"; do
        echo "$summary" | grep -qw -- "$type" || { log "FAIL: $pcap lacks $type"; return 1; }
    done
}

# send a command to an xl2tpd control FIFO without blocking forever if xl2tpd has died
xl2tpd_control() {
    # shellcheck disable=SC2016 # $1 and $2 are expanded by the inner bash
    timeout 5 bash -c 'printf "%s\n" "$2" >"$1"' _ "$1" "$2"
}

lns_common() { # NAME -> lab up, LNS = l2tpns with FreeRADIUS, capture running
    lab_up
    start_freeradius
    start_l2tpns
    start_capture "$WORK/$1.pcap"
}

finish() { # NAME TYPE...: stop capture, keep logs, tear down, verify
    local name=$1 f
    shift
    stop_capture "$WORK/$name.pcap" "$OUTDIR/$name.pcap"
    mkdir -p "$WORK/$name.logs"
    for f in "$WORK/lac.xl2tpd.log" "$WORK/lns.xl2tpd.log" "$WORK/l2tpns/l2tpns.log" \
        "$WORK/freeradius.log" "$WORK/$name.pcap.log"; do
        if [ -f "$f" ]; then mv "$f" "$WORK/$name.logs/"; fi
    done
    lab_down
    verify "$OUTDIR/$name.pcap" "$@"
}

# (a) xl2tpd LAC -> l2tpns LNS: full life cycle, then "d" on the LAC control FIFO -> StopCCN
scenario_l2tpns() {
    local name=xl2tpd-lac_l2tpns-lns conf
    log "scenario $name"
    lns_common "$name"
    conf=$(xl2tpd_lac_conf vec "$WORK/good.secrets" no yes)
    start_xl2tpd "$NS_LAC" lac "$conf" "$WORK/good.secrets"
    wait_for 20 "$WORK/lac.xl2tpd.log" 'Call established'
    # pppd cannot start here, so xl2tpd closes the call with a CDN
    wait_for 20 "$WORK/lac.xl2tpd.log" 'call_close:|Connection closed to'
    sleep 1
    xl2tpd_control "$WORK/lac.control" "d vec"
    wait_for 10 "$L2TPNS_LOG" 'Received StopCCN'
    finish "$name" SCCRQ SCCRP SCCCN ICRQ ICRP ICCN CDN StopCCN ZLB DATA
}

# (a') same pair, but the LAC holds the wrong secret: the SCCRP's Challenge Response fails
scenario_l2tpns_badsecret() {
    local name=xl2tpd-lac_l2tpns-lns_badsecret conf
    log "scenario $name"
    lns_common "$name"
    conf=$(xl2tpd_lac_conf vec "$WORK/bad.secrets" no yes)
    start_xl2tpd "$NS_LAC" lac "$conf" "$WORK/bad.secrets"
    wait_for 20 "$L2TPNS_LOG" 'Received StopCCN'
    finish "$name" SCCRQ SCCRP StopCCN ZLB
}

# (a'') same as (a) but the tunnel stays idle after the CDN until a Hello (xl2tpd sends one
# after 60 s; l2tpns would after 60 s without traffic, but the Hello it receives resets that)
scenario_l2tpns_hello() {
    local name=xl2tpd-lac_l2tpns-lns_hello conf
    log "scenario $name (waits up to 80 s for Hello)"
    lns_common "$name"
    conf=$(xl2tpd_lac_conf vec "$WORK/good.secrets" no yes)
    start_xl2tpd "$NS_LAC" lac "$conf" "$WORK/good.secrets"
    wait_for 20 "$WORK/lac.xl2tpd.log" 'Call established'
    wait_for 80 "$L2TPNS_LOG" 'HELLO'
    sleep 3
    xl2tpd_control "$WORK/lac.control" "d vec"
    wait_for 10 "$L2TPNS_LOG" 'Received StopCCN' || true
    finish "$name" SCCRQ SCCRP SCCCN HELLO ZLB
}

start_xl2tpd_lns() {
    local conf
    conf=$(xl2tpd_lns_conf "$WORK/good.secrets")
    start_xl2tpd "$NS_LNS" lns "$conf" "$WORK/good.secrets"
    wait_for 10 "$WORK/lns.xl2tpd.log" 'Listening on'
}

# (b) xl2tpd LAC -> xl2tpd LNS, challenge both ways, hidden bit on both ends; "d" ends it
scenario_xl2tpd() {
    local name=xl2tpd-lac_xl2tpd-lns_hidden conf
    log "scenario $name"
    lab_up
    start_xl2tpd_lns
    start_capture "$WORK/$name.pcap"
    conf=$(xl2tpd_lac_conf vec "$WORK/good.secrets" yes yes)
    start_xl2tpd "$NS_LAC" lac "$conf" "$WORK/good.secrets"
    wait_for 20 "$WORK/lac.xl2tpd.log" 'Call established'
    # both pppds fail; whichever end notices first sends the CDN (LAC: call_close, LNS:
    # the LAC logs the CDN it received as "Connection closed to")
    wait_for 20 "$WORK/lac.xl2tpd.log" 'call_close:|Connection closed to'
    sleep 1
    xl2tpd_control "$WORK/lac.control" "d vec"
    wait_for 10 "$WORK/lns.xl2tpd.log" 'Connection .* closed|StopCCN|Goodbye'
    finish "$name" SCCRQ SCCRP SCCCN ICRQ ICRP ICCN CDN StopCCN ZLB
}

# (b') the xl2tpd LNS challenges a LAC that holds the wrong secret: SCCCN fails -> StopCCN
scenario_xl2tpd_badsecret() {
    local name=xl2tpd-lac_xl2tpd-lns_badsecret conf
    log "scenario $name"
    lab_up
    start_xl2tpd_lns
    start_capture "$WORK/$name.pcap"
    # the LAC does not challenge, so it is the LNS that detects the bad secret
    conf=$(xl2tpd_lac_conf vec "$WORK/bad.secrets" no no)
    start_xl2tpd "$NS_LAC" lac "$conf" "$WORK/bad.secrets"
    wait_for 20 "$WORK/lns.xl2tpd.log" 'StopCCN|closed|Goodbye'
    sleep 1
    finish "$name" SCCRQ SCCRP SCCCN StopCCN ZLB
}

write_ppp_options
write_secrets
SCENARIOS="l2tpns l2tpns_badsecret xl2tpd xl2tpd_badsecret"
if [ "$CAPTURE_HELLO" = 1 ]; then SCENARIOS="$SCENARIOS l2tpns_hello"; fi
for scenario in ${CAPTURE_ONLY:-$SCENARIOS}; do
    "scenario_$scenario"
done
log "done: ${WRITTEN[*]}"
