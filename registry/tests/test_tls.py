"""``serve`` with TLS: a self-signed certificate made by openssl, checked by the client
against it as the CA; plain HTTP and unverified clients are refused."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
import pytest
from pydocker_registry.auth import set_password
from pydocker_registry.testing import RegistryProcess, self_signed_certificate, write_config


async def test_https_with_a_self_signed_certificate(tmp_path: Path) -> None:
    certificate, key = self_signed_certificate(tmp_path)
    users = tmp_path / "htpasswd"
    set_password(users, "alice", "wonderland", rounds=4)
    config = write_config(
        tmp_path,
        f'[tls]\ncertificate = "{certificate}"\nkey = "{key}"\n'
        f'[auth]\nmode = "htpasswd"\n[auth.htpasswd]\npath = "{users}"\n',
    )
    trusted = ssl.create_default_context(cafile=str(certificate))
    alice = {"Authorization": aiohttp.encode_basic_auth("alice", "wonderland")}
    with RegistryProcess(config) as registry:
        assert registry.url.startswith("https://127.0.0.1:")
        async with aiohttp.ClientSession() as session:
            async with session.get(registry.url + "/v2/", ssl=trusted, headers=alice) as response:
                assert response.status == 200
            async with session.get(registry.url + "/v2/", ssl=trusted) as response:
                assert response.status == 401

            # The system's CAs do not know this certificate.
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(registry.url + "/v2/", ssl=ssl.create_default_context())
            # Plain HTTP on the TLS port gets no HTTP answer.
            plain = registry.url.replace("https://", "http://")
            with pytest.raises(aiohttp.ClientError):
                async with session.get(plain + "/v2/") as response:
                    await response.read()
        host, port = registry.url.removeprefix("https://").split(":")
        _, writer = await asyncio.open_connection(host, int(port), ssl=trusted)
        assert writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        writer.close()
        await writer.wait_closed()
    assert "listening on https://127.0.0.1:" in registry.log()


def test_a_key_that_does_not_match_the_certificate_is_refused(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    certificate, _ = self_signed_certificate(tmp_path / "one")
    _, other_key = self_signed_certificate(tmp_path / "two")
    config = write_config(tmp_path, f'[tls]\ncertificate = "{certificate}"\nkey = "{other_key}"\n')
    registry = RegistryProcess(config, start_timeout=15)
    with pytest.raises(RuntimeError, match="did not start"):
        registry.start()
    assert registry.stop() == 1
    (line,) = registry.lines
    assert line.startswith(f"tls: cannot load {certificate} / {other_key}: ")
    assert "KEY_VALUES_MISMATCH" in line or "key values mismatch" in line
