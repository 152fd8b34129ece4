import argparse
import sys

from . import etcd_wait
from .server import run
from . import encryption
from .tokens import ServiceAccountTokens

parser = argparse.ArgumentParser(prog="kubeling apiserver", description="Run the kubeling API server.")
parser.add_argument("--etcd", default="http://127.0.0.1:2379", help="etcd client URL")
parser.add_argument("--bind", default="0.0.0.0")
parser.add_argument("--port", type=int, default=6443)
parser.add_argument("--token-auth-file", "--token-file", dest="token_file", default=None,
                    help='static tokens, CSV lines `token,user,uid,"group1,group2"` (a line of just '
                         '`token` or `token,user` is the admin); bootstrap tokens are lines in group '
                         'system:bootstrappers')
parser.add_argument("--tls-cert-file", default=None, help="serve HTTPS with this PEM certificate (chain)")
parser.add_argument("--tls-private-key-file", default=None, help="PEM private key of --tls-cert-file")
parser.add_argument("--client-ca-file", default=None,
                    help="accept client certificates signed by this CA (CN = user, O = groups); needs TLS")
parser.add_argument("--encryption-provider-config", default=None,
                    help="EncryptionConfiguration (apiserver.config.k8s.io/v1) for encryption at rest")
parser.add_argument("--service-account-signing-key-file", default=None,
                    help="PEM private key (EC P-256 or RSA) that signs ServiceAccount tokens")
parser.add_argument("--service-account-key-file", action="append", default=[],
                    help="PEM public (or private) key that verifies ServiceAccount tokens; repeatable")
parser.add_argument("--service-account-issuer", default=None, help="the iss of issued tokens")
parser.add_argument("--api-audiences", default=None,
                    help="comma-separated audiences tokens must name (default: the issuer)")
parser.add_argument("--kubelet-client-certificate", default=None,
                    help="client certificate for the node agents (logs, exec, attach, port-forward)")
parser.add_argument("--kubelet-client-key", default=None, help="PEM private key of --kubelet-client-certificate")


def _seconds(text: str) -> float:
    """A duration as kube-apiserver takes it (`1m`, `30s`, `500ms`) or plain seconds."""
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix):  # "ms" is tried before "s"
            return float(text[:-len(suffix)]) * scale
    return float(text)


parser.add_argument("--etcd-count-metric-poll-period", type=_seconds, default=60.0,
                    help="how often each resource's objects in etcd are counted (apiserver_storage_objects), "
                         "e.g. 1m or 5s; 0: never")
parser.add_argument("--watch-cache", type=lambda v: v.lower() in ("1", "true", "yes"), default=True,
                    metavar="true|false", help="serve watches and lists from memory (default true)")
parser.add_argument("--default-watch-cache-size", type=int, default=None, metavar="N",
                    help="recent events the watch cache keeps per resource for watches that resume "
                         "(default 10000); 0 turns the watch cache off")
parser.add_argument("--event-ttl", type=_seconds, default=3600.0,
                    help="how long an Event is kept after its last write, e.g. 1h (kube-apiserver's default)")
args = parser.parse_args()
if args.client_ca_file and not args.tls_cert_file:
    parser.error("--client-ca-file needs --tls-cert-file (client certificates come with TLS)")
etcd_wait.wait(args.etcd)  # retry rather than exit when etcd is not up yet
try:
    service_accounts = None
    if args.service_account_signing_key_file or args.service_account_key_file:
        service_accounts = ServiceAccountTokens.from_files(
            args.service_account_signing_key_file, args.service_account_key_file, args.service_account_issuer,
            [a for a in (args.api_audiences or "").split(",") if a] or None)
    from .streaming import configure_kubelet_client
    configure_kubelet_client(args.kubelet_client_certificate, args.kubelet_client_key)
    if args.encryption_provider_config:
        encryption.load(args.encryption_provider_config)  # a bad file stops the start, as kube-apiserver
    run(args.etcd, args.bind, args.port, args.token_file, args.tls_cert_file, args.tls_private_key_file,
        args.client_ca_file, args.encryption_provider_config, service_accounts,
        count_poll_period=args.etcd_count_metric_poll_period, event_ttl=max(1, round(args.event_ttl)),
        watch_cache=args.watch_cache and args.default_watch_cache_size != 0,
        watch_cache_size=args.default_watch_cache_size)
except (ValueError, OSError) as exc:  # a bad token, key or encryption file: one line, not a traceback
    sys.exit(f"kubeling apiserver: {exc}")
