"""String format checks, as apimachinery's pkg/util/validation: each returns a list of
messages (empty when valid), worded as Kubernetes words them."""
from __future__ import annotations

import ipaddress
import re

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                     "or '-', and must start and end with an alphanumeric character")
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + r"(\." + DNS1123_LABEL_FMT + ")*"
DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                         "characters, '-' or '.', and must start and end with an alphanumeric character")
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                     "start with an alphabetic character, and end with an alphanumeric character")
QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
QUALIFIED_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start "
                      "and end with an alphanumeric character")
LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
                   "'-', '_' or '.', and must start and end with an alphanumeric character")
ENV_VAR_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
ENV_VAR_MSG = ("a valid environment variable name must consist of alphabetic characters, digits, "
               "'_', '-', or '.', and must not start with a digit")
CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
HTTP_HEADER_FMT = "[-A-Za-z0-9]+"
HTTP_HEADER_MSG = "a valid HTTP header must consist of alphanumeric characters or '-'"

LABEL_MAX = 63
SUBDOMAIN_MAX = 253


def _full(fmt: str) -> re.Pattern[str]:
    return re.compile("^" + fmt + "$")


_DNS1123_LABEL = _full(DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN = _full(DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL = _full(DNS1035_LABEL_FMT)
_QUALIFIED_NAME = _full(QUALIFIED_NAME_FMT)
_LABEL_VALUE = _full(LABEL_VALUE_FMT)
_ENV_VAR = _full(ENV_VAR_FMT)
_CONFIG_KEY = _full(CONFIG_KEY_FMT)
_HTTP_HEADER = _full(HTTP_HEADER_FMT)


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    # Same assembly as apimachinery's RegexError, double space included.
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    text = msg + " (e.g. "
    for i, ex in enumerate(examples):
        if i:
            text += " or "
        text += f"'{ex}', "
    return text + f"regex used for validation is '{fmt}')"


def max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


def inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


def dns1123_label(value: str) -> list[str]:
    errs = []
    if len(value) > LABEL_MAX:
        errs.append(max_len_error(LABEL_MAX))
    if not _DNS1123_LABEL.match(value):
        errs.append(regex_error(DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if len(value) > SUBDOMAIN_MAX:
        errs.append(max_len_error(SUBDOMAIN_MAX))
    if not _DNS1123_SUBDOMAIN.match(value):
        errs.append(regex_error(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def dns1035_label(value: str) -> list[str]:
    errs = []
    if len(value) > LABEL_MAX:
        errs.append(max_len_error(LABEL_MAX))
    if not _DNS1035_LABEL.match(value):
        errs.append(regex_error(DNS1035_LABEL_MSG, DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def qualified_name(value: str) -> list[str]:
    """A label/annotation key: optional DNS subdomain prefix, '/', and a name part."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in dns1123_subdomain(prefix))
    else:
        return ["a qualified name " + regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT,
                                                  "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > LABEL_MAX:
        errs.append("name part " + max_len_error(LABEL_MAX))
    if name and not _QUALIFIED_NAME.match(name):
        errs.append("name part " + regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT,
                                               "MyName", "my.name", "123-abc"))
    return errs


def label_value(value: str) -> list[str]:
    errs = []
    if len(value) > LABEL_MAX:
        errs.append(max_len_error(LABEL_MAX))
    if not _LABEL_VALUE.match(value):
        errs.append(regex_error(LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def port_num(value: int) -> list[str]:
    return [] if 1 <= value <= 65535 else [inclusive_range_error(1, 65535)]


def port_name(value: str) -> list[str]:
    """IANA_SVC_NAME (RFC 6335), as IsValidPortName."""
    errs = []
    if len(value) > 15:
        errs.append(max_len_error(15))
    if not re.fullmatch("[-a-z0-9]+", value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value.startswith("-") or value.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def env_var_name(value: str) -> list[str]:
    errs = []
    if not _ENV_VAR.match(value):
        errs.append(regex_error(ENV_VAR_MSG, ENV_VAR_FMT, "my.env-name", "MY_ENV.NAME", "MyEnvName1"))
    errs.extend(_chdir_prefix(value))
    return errs


def config_map_key(value: str) -> list[str]:
    errs = []
    if len(value) > SUBDOMAIN_MAX:
        errs.append(max_len_error(SUBDOMAIN_MAX))
    if not _CONFIG_KEY.match(value):
        errs.append(regex_error(CONFIG_KEY_MSG, CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    errs.extend(_chdir_prefix(value))
    return errs


def http_header_name(value: str) -> list[str]:
    if not _HTTP_HEADER.match(value):
        return [regex_error(HTTP_HEADER_MSG, HTTP_HEADER_FMT, "X-Header-Name")]
    return []


def _chdir_prefix(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


def parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def ip(value: str) -> list[str]:
    return [] if parse_ip(value) is not None and "%" not in value else [IP_MSG]


def ipv4(value: str) -> list[str]:
    return [] if isinstance(parse_ip(value), ipaddress.IPv4Address) else ["must be a valid IPv4 address"]


def ipv6(value: str) -> list[str]:
    parsed = parse_ip(value)
    ok = isinstance(parsed, ipaddress.IPv6Address) and "%" not in value
    return [] if ok else ["must be a valid IPv6 address"]


def non_special_ip(value: str) -> list[str]:
    """Endpoint addresses may not be special-purpose (validateNonSpecialIP)."""
    addr = parse_ip(value)
    if addr is None:
        return []
    if addr.is_unspecified:
        return [f"may not be unspecified ({value})"]
    if addr.is_loopback:
        return ["may not be in the loopback range (127.0.0.0/8, ::1/128)"]
    if addr.is_link_local:
        return ["may not be in the link-local range (169.254.0.0/16, fe80::/10)"]
    if addr in ipaddress.ip_network("224.0.0.0/24") or addr in ipaddress.ip_network("ff02::/16"):
        return ["may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"]
    return []


def cidr(value: str) -> list[str]:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    return [] if "/" in value else ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]


def fully_qualified_domain_name(value: str) -> list[str]:
    name = value[:-1] if value.endswith(".") else value
    errs = dns1123_subdomain(name)
    if not errs and len(name.split(".")) < 2:
        errs.append("should be a domain with at least two segments separated by dots")
    return errs
