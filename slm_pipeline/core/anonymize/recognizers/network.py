"""Network identifiers: obfuscated e-mails; which IPs and `x@y` strings are technical, not personal."""

from __future__ import annotations

import ipaddress

from slm_pipeline.core.anonymize.lexicons import _UNIT_TYPES, _rx
from slm_pipeline.core.anonymize.recognizers.base import _RegexRecognizer
from slm_pipeline.core.anonymize.recognizers.numbers import _I


class ObfuscatedEmailRecognizer(_RegexRecognizer):
    """"name at domain dot com" spellings, and any user@host.tld shape (Presidio's EmailRecognizer rejects
    addresses whose TLD is not a public suffix, e.g. "@company.internal", "@shop.example")."""

    ENTITY = "EMAIL_ADDRESS"
    PATTERNS = [
        (r"(?<![\w.+\-])[\w.+\-]*\w@\w[\w\-]*(?:\.[\w\-]+)+(?<![.\-])", 0.6, 0, 0),
        (r"\b[\w.+\-]+[ \t]*(?:\[at\]|\(at\)|\{at\}|[ \t]at[ \t])[ \t]*[\w\-]+"
         r"(?:[ \t]*(?:\[dot\]|\(dot\)|\{dot\}|[ \t]dot[ \t])[ \t]*[\w\-]+)+\b", 0.6, 0, _I),
    ]


# ---------------------------------------------------------------------------------------------------------
# Precision: what looks like PII in technical text but is not
# ---------------------------------------------------------------------------------------------------------

_SHARED_NAT = ipaddress.ip_network("100.64.0.0/10")  # not is_private, not global: one NAT serves many customers
_DOC_NETS = tuple(ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",
                                                      "2001:db8::/32"))


def non_public_ip(value: str) -> bool:
    """Loopback, unspecified, private, shared (carrier-grade NAT, RFC 6598), link-local, multicast, reserved or
    documentation address (or a network of them, "0.0.0.0/0"): identifies no one."""
    v = value.strip().strip("[]").split("%")[0]
    try:
        net = ipaddress.ip_network(v, strict=False)
    except ValueError:
        return False
    a = net.network_address
    return net.prefixlen == 0 or a.is_private or a.is_loopback or a.is_unspecified or a.is_link_local or \
        a.is_multicast or a.is_reserved or (a.version == 4 and a in _SHARED_NAT) or any(a in n for n in _DOC_NETS if n.version == a.version)


def _technical_email(text: str, s: int, e: int) -> bool:
    """user@host shapes that are not mailboxes: systemd units, module@version, URL credentials, format strings."""
    local, _, domain = text[s:e].rpartition("@")
    if not local:
        return False
    if domain.rsplit(".", 1)[-1].lower() in _UNIT_TYPES:
        return True  # syncthing@myuser.service
    if _rx(r"(?i)v?\d+(?:\.\d+)+(?:[\-+][\w.\-]*)?").fullmatch(domain):
        return True  # suture@v3.0.2, lodash@4.17.21
    if s and text[s - 1] in "%{$":
        return True  # "%s@ad.example.com": a template
    if _rx(r":[\w~./\-]").match(text, e):
        return True  # scp-style remote "git@github.com:org/repo.git": a login on a host, not a mailbox
    return bool(_rx(r"://[^\s/@]*$").search(text[max(0, s - 200):s]))  # http://user:password@proxy.example.com

