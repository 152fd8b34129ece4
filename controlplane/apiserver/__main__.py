import argparse
import sys

from . import etcd_wait
from .server import run

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
args = parser.parse_args()
if args.client_ca_file and not args.tls_cert_file:
    parser.error("--client-ca-file needs --tls-cert-file (client certificates come with TLS)")
etcd_wait.wait(args.etcd)  # retry rather than exit when etcd is not up yet
try:
    run(args.etcd, args.bind, args.port, args.token_file, args.tls_cert_file, args.tls_private_key_file,
        args.client_ca_file)
except ValueError as exc:  # a bad token file: one line, not a traceback
    sys.exit(f"kubeling apiserver: {exc}")
