#!/usr/bin/env bash
# Vagrant provisioning, every node: install kubeling from the wheelhouse the
# host prepared (scripts/vagrant/prepare) and load the images pods need into
# the node's dockerd. Nothing comes from the network: the synced folder has it.
# Idempotent: `vagrant provision` reinstalls kubeling (new code) and reloads.
set -euo pipefail

DIST="${KUBELING_DIST:-/opt/kubeling-dist}"
VENV=/opt/kubeling

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "install.sh must run as root"
[[ -d $DIST/wheels && -f $DIST/images.tar ]] \
    || die "$DIST has no wheels/ or images.tar: run scripts/vagrant/prepare on the host, then vagrant provision"

# A VM from debian/bookworm64 lacks what the node image ships; the docker
# provider's image has it all and skips this. (VMs do reach Debian's mirror.)
PACKAGES=(docker.io iptables iproute2 conntrack python3-venv busybox-static
          containernetworking-plugins etcd-server etcd-client openssl ca-certificates curl)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if (( ${#missing[@]} )); then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Debian's etcd unit would hold port 2379: kubeling runs its own.
systemctl disable --now etcd.service >/dev/null 2>&1 || true

if [[ ! -x $VENV/bin/python ]]; then
    say "creating $VENV"
    python3 -m venv "$VENV"
fi
say "installing kubeling into $VENV from $DIST/wheels"
"$VENV/bin/pip" install -q --disable-pip-version-check --no-index --find-links "$DIST/wheels" \
    --force-reinstall --no-deps "$DIST"/wheels/kubeling-*.whl
"$VENV/bin/pip" install -q --disable-pip-version-check --no-index --find-links "$DIST/wheels" kubeling
ln -sfn "$VENV/bin/kubeling" /usr/local/bin/kubeling
kubeling --help >/dev/null || die "kubeling does not run after the install"

systemctl enable --now docker.service >/dev/null 2>&1 || systemctl start docker.service
for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
docker info >/dev/null 2>&1 || die "dockerd does not answer on this node"
say "loading images into the node's dockerd"
docker load -i "$DIST/images.tar" | sed 's/^/    /'
# The name Kubernetes' kubelet uses for the pause image, as scripts/setup does.
docker tag kubeling/pause:3.9 registry.k8s.io/pause:3.9
# `vagrant provision` after a code change: the running components take the
# new code (a restart recreates no container: scripts/test-vms checks that).
systemctl try-restart 'kubeling-*.service' 2>/dev/null || true
say "kubeling installed on $(hostname)"
