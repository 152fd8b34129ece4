#!/usr/bin/env bash
# Vagrant provisioning, control plane: `kubeling init` with the token and the CA
# the Vagrantfile made on the host (uploaded to UPLOAD_DIR by the file
# provisioner; the CA key reaches only this machine). Idempotent: a machine
# that already is the control plane is left as it is.
# Usage: cp.sh ADVERTISE_IP UPLOAD_DIR
set -euo pipefail
IP="$1" UPLOAD="$2"

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The uploaded copies (the CA key among them) go whatever happens: kubeling
# init keeps what it needs under /etc/kubeling/pki, 0600.
trap 'rm -rf "$UPLOAD"' EXIT

if [[ -f /etc/kubeling/admin.kubeconfig ]]; then
    say "$(hostname) already is the control plane (/etc/kubeling/admin.kubeconfig exists)"
    exit 0
fi
for f in ca.crt ca.key token; do
    [[ -s $UPLOAD/$f ]] || die "$UPLOAD/$f is missing (the file provisioner did not run?)"
done
say "kubeling init on $(hostname) (advertise address $IP)"
start=$SECONDS
kubeling init --advertise-address "$IP" --node-name "$(hostname)" \
    --token "$(tr -d '[:space:]' <"$UPLOAD/token")" \
    --ca-cert "$UPLOAD/ca.crt" --ca-key "$UPLOAD/ca.key"
say "control plane ready in $(( SECONDS - start ))s"
