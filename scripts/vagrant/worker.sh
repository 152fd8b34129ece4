#!/usr/bin/env bash
# Vagrant provisioning, worker: `kubeling join` with the token and the CA the
# Vagrantfile made on the host. Machines come up in parallel, so the control
# plane may not answer yet (or not know the token yet): join checks everything
# before it changes anything, so it is simply tried again until it succeeds or
# KUBELING_JOIN_TIMEOUT (default 300 s) runs out. Idempotent: a machine that
# already joined is left as it is.
# Usage: worker.sh SERVER NODE_IP UPLOAD_DIR
set -euo pipefail
SERVER="$1" IP="$2" UPLOAD="$3"
TIMEOUT="${KUBELING_JOIN_TIMEOUT:-300}"

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

trap 'rm -rf "$UPLOAD"' EXIT

if [[ -f /etc/kubeling/node.kubeconfig ]]; then
    say "$(hostname) already joined (/etc/kubeling/node.kubeconfig exists)"
    exit 0
fi
for f in ca.crt token; do
    [[ -s $UPLOAD/$f ]] || die "$UPLOAD/$f is missing (the file provisioner did not run?)"
done
token="$(tr -d '[:space:]' <"$UPLOAD/token")"
start=$SECONDS
left() { echo $(( TIMEOUT - (SECONDS - start) )); }

# Wait until the control plane answers, over TLS verified with the CA we were
# given (/readyz needs no credentials). Progress every 15 s.
say "waiting for the control plane at $SERVER"
next=15
until curl -fsS -m 3 --cacert "$UPLOAD/ca.crt" "$SERVER/readyz" >/dev/null 2>&1; do
    (( $(left) > 0 )) || die "the control plane at $SERVER did not answer within ${TIMEOUT}s"
    if (( SECONDS - start >= next )); then
        say "... still waiting ($(( SECONDS - start ))s)"
        next=$(( next + 15 ))
    fi
    sleep 2
done

say "kubeling join $SERVER from $(hostname) (node IP $IP)"
until kubeling join "$SERVER" --token "$token" --ca-cert "$UPLOAD/ca.crt" \
        --node-ip "$IP" --node-name "$(hostname)"; do
    # A failed join changes nothing, so it may be tried again (the control
    # plane may still be starting its signer) -- unless it got half-way.
    [[ -f /etc/kubeling/node.kubeconfig ]] && die "kubeling join failed after writing its credentials"
    (( $(left) > 0 )) || die "kubeling join did not succeed within ${TIMEOUT}s"
    say "kubeling join failed; trying again in 5s"
    sleep 5
done
say "$(hostname) joined in $(( SECONDS - start ))s"
