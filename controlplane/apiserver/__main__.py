import argparse

from .server import run

parser = argparse.ArgumentParser(prog="kubeling apiserver", description="Run the kubeling API server.")
parser.add_argument("--etcd", default="http://127.0.0.1:2379", help="etcd client URL")
parser.add_argument("--bind", default="0.0.0.0")
parser.add_argument("--port", type=int, default=6443)
parser.add_argument("--token-file", default=None, help="static bearer tokens, one per line")
parser.add_argument("--tls-cert-file", default=None, help="serve HTTPS with this PEM certificate (chain)")
parser.add_argument("--tls-private-key-file", default=None, help="PEM private key of --tls-cert-file")
args = parser.parse_args()
run(args.etcd, args.bind, args.port, args.token_file, args.tls_cert_file, args.tls_private_key_file)
