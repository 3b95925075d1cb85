"""The SSRF guard: cloud metadata addresses stay refused when private networks are
allowed (unless listed in ``metadata_allowlist``), and what Python's ``is_global``
misses is refused when they are not. Refusals happen before any connection; the
redirect case runs against a real HTTP server."""

from __future__ import annotations

from pathlib import Path

import pytest

from podmill.errors import DownloadError
from podmill.feeds.download import check_url, download, fetch_feed
from podmill.settings import Settings

from support.httpserver import TestHTTPServer

METADATA = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",  # AWS, GCP, Azure...
    "http://169.254.170.2/v2/credentials/x",  # AWS ECS task role
    "http://169.254.170.23/v1/credentials",  # EKS Pod Identity
    "http://100.100.100.200/latest/meta-data/",  # Alibaba Cloud
    "http://169.254.0.23/meta-data/",  # Tencent Cloud
    "http://192.0.0.192/latest/",  # Oracle Cloud (legacy)
    "http://168.63.129.16/machine?comp=goalstate",  # Azure WireServer (a public address)
    "http://[fd00:ec2::254]/latest/meta-data/",  # AWS IMDS over IPv6
    "http://[::ffff:169.254.169.254]/latest/",  # IPv4-mapped spelling
    "http://[64:ff9b::a9fe:a9fe]/latest/",  # NAT64 spelling of 169.254.169.254
    "http://[2002:a9fe:a9fe::1]/latest/",  # 6to4 spelling
]


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", **values)


@pytest.mark.parametrize("url", METADATA)
def test_metadata_addresses_stay_refused_with_private_networks_allowed(
    url: str, tmp_path: Path
) -> None:
    trusting = settings(tmp_path, allow_private_networks=True)
    with pytest.raises(DownloadError) as caught:
        check_url(url, trusting)
    message = str(caught.value)
    assert "a cloud metadata address" in message and "metadata_allowlist" in message
    assert "\n" not in message
    # and so does a download (no connection attempted: these hosts do not exist here)
    with pytest.raises(DownloadError, match="cloud metadata address"):
        download(url, tmp_path / "ep.mp3", trusting)


def test_a_listed_metadata_address_is_allowed(tmp_path: Path) -> None:
    listed = settings(tmp_path, allow_private_networks=True, metadata_allowlist=["169.254.169.254"])
    check_url("http://169.254.169.254/latest/", listed)
    with pytest.raises(DownloadError, match="cloud metadata"):
        check_url("http://[fd00:ec2::254]/latest/", listed)  # only what is listed


def test_a_bad_allowlist_entry_is_named(tmp_path: Path) -> None:
    bad = settings(tmp_path, allow_private_networks=True, metadata_allowlist=["metadata.local"])
    with pytest.raises(DownloadError, match=r"metadata_allowlist: .*'metadata.local'"):
        check_url("http://169.254.169.254/", bad)


def test_a_redirect_to_a_metadata_address_is_refused(
    http_server: TestHTTPServer, tmp_path: Path
) -> None:
    # The trusted private network itself is allowed; where it redirects to is checked.
    url = http_server.add_redirect("/feed.xml", "http://169.254.169.254/latest/meta-data/")
    trusting = settings(tmp_path, allow_private_networks=True)
    with pytest.raises(DownloadError, match=r"redirected from .*a cloud metadata address"):
        fetch_feed(url, trusting)
    assert http_server.count("/feed.xml") == 1  # final: not retried


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("[fec0::1]", "site-local"),  # deprecated site-local: is_global says True
        ("[fec0:0:0:ffff::1]", "site-local"),
        ("192.0.0.9", "IETF protocol assignment"),  # is_global says True (PCP anycast)
        ("192.0.0.1", "private"),
        ("192.88.99.1", "deprecated 6to4 relay"),
        ("[3fff::1]", "documentation"),  # RFC 9637, newer than Python 3.11's table
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
        ("198.18.0.1", "private"),  # benchmarking
        ("240.0.0.1", "private"),  # reserved
    ],
)
def test_non_global_ranges_are_refused_without_private_networks(
    address: str, kind: str, tmp_path: Path
) -> None:
    with pytest.raises(DownloadError) as caught:
        check_url(f"http://{address}/feed.xml", settings(tmp_path))
    assert f"a {kind} address" in str(caught.value)


@pytest.mark.parametrize("address", ["93.184.215.14", "[2606:2800:21f:cb07:6820:80da:af6b:8b2c]"])
def test_public_addresses_pass(address: str, tmp_path: Path) -> None:
    check_url(f"http://{address}/feed.xml", settings(tmp_path))
