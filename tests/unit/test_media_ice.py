"""Host-address policy for aioice."""

from __future__ import annotations

import aioice.ice
import pytest

from atrium_media import ice


def test_parse_addresses() -> None:
    assert ice.parse_addresses("127.0.0.1") == ("127.0.0.1",)
    assert ice.parse_addresses(" 10.0.0.5, 127.0.0.1,,10.0.0.5 ") == ("10.0.0.5", "127.0.0.1")
    assert ice.parse_addresses("") == ()
    assert ice.parse_addresses("::1") == ("::1",)
    with pytest.raises(ValueError):
        ice.parse_addresses("localhost")


def test_fixed_list_respects_ip_version_flags() -> None:
    get = ice._make_fixed(("127.0.0.1", "fd00::2"))
    assert get(use_ipv4=True, use_ipv6=True) == ["127.0.0.1", "fd00::2"]
    assert get(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
    assert get(use_ipv4=False, use_ipv6=True) == ["fd00::2"]


def test_default_policy_adds_loopback() -> None:
    found = ice._with_loopback(use_ipv4=True, use_ipv6=False)
    assert found.count("127.0.0.1") == 1
    assert "127.0.0.1" not in ice._with_loopback(use_ipv4=False, use_ipv6=True)


def test_configure_is_idempotent() -> None:
    first = ice.configure_host_addresses(["127.0.0.1"])
    assert ice.is_configured()
    patched = aioice.ice.get_host_addresses
    ice.configure_host_addresses(["10.1.2.3"])
    assert aioice.ice.get_host_addresses is patched
    assert first in (("127.0.0.1",), None)
