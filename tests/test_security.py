"""Secure defaults: token auth on, and no Ray HTTP endpoint answers on a non-loopback address."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _listeners() -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket on this machine."""
    out = set()
    for name, fam in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] != "0A":  # LISTEN
                continue
            addr, port = parts[1].split(":")
            raw = bytes.fromhex(addr)
            if fam == 4:
                ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
            else:
                words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
                ip = socket.inet_ntop(socket.AF_INET6, b"".join(words))
            out.add((ip, int(port, 16)))
    return out


def _public_ip() -> str | None:
    r = subprocess.run(["hostname", "-I"], capture_output=True, text=True)
    for ip in r.stdout.split():
        if ":" not in ip and not ip.startswith("127."):
            return ip
    return None


def _answers_http(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=2) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            s.settimeout(2)
            data = s.recv(16)
    except OSError:
        return False
    return data.startswith(b"HTTP/")


def test_no_http_endpoint_on_a_public_address_during_a_run(tmp_path, small_space):
    flowers = Path(__file__).resolve().parents[2] / "shared/datasets/flowers"
    ip = _public_ip()
    if ip is None:
        pytest.skip("this machine has no non-loopback IPv4 address to probe")
    before = _listeners()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hyperfcn.cli", "tune", str(flowers / "train"), "--val-dir",
         str(flowers / "val"), "--out", str(tmp_path / "run"), "--space", str(small_space),
         "--image-size", "32", "--samples", "1", "--max-epochs", "2", "--no-final", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"})  # must be ignored
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if list((tmp_path / "run" / "tune").glob("trial_*/result.json")):
                break
            time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read()
        new = _listeners() - before
        assert new, "Ray opened no ports?"
        public = [(a, p) for a, p in new if not a.startswith("127.") and a != "::1"]
        http = [(a, p) for a, p in public if _answers_http(ip, p)]
        assert not http, f"HTTP answers on a non-loopback address: {http}"
    finally:
        proc.wait(timeout=600)
    assert proc.returncode == 0
    assert "ignoring RAY_AUTH_MODE=disabled" in proc.stderr.read()


def test_token_auth_is_on_for_the_local_cluster():
    code = ("from hyperfcn import compat, session; session.start(quiet=True); "
            "print(compat.token_auth_enabled()); session.shutdown()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "RAY_AUTH_MODE": "disabled"}, timeout=300)
    assert r.stdout.strip().splitlines()[-1] == "True", r.stderr[-2000:]
