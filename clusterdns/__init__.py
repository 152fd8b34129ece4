"""kubeling's cluster DNS (issue 13): a cluster add-on like CoreDNS, run as a host process.

Named clusterdns, not dns: dnspython, which it uses for the wire format, is the package `dns`.
"""
