"""Downloads against an HTTP server on 127.0.0.1: good file, wrong checksum, a server that dies
mid-transfer, 404, an interrupted download, offline mode. The cache never keeps a partial file."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from effnet.specs import PreprocessConfig
from effnet.weights import DownloadError, OfflineError, WeightRecord, download, fetch, hub

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        if self.path == "/good.pth":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif self.path == "/dies.pth":
            # promise the whole file, send a third, then drop the connection
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 3])
            self.wfile.flush()
            self.connection.shutdown(2)
        else:
            self.send_error(404, "Not Found")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EFFNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("EFFNET_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path / "cache"


def record(url: str | None, sha256: str | None) -> WeightRecord:
    return WeightRecord(
        "efficientnet_b0", "test", "test", "effnet", PreprocessConfig(224), url=url, sha256=sha256
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


GOOD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_good_download_verified_and_cached(server: str, cache: Path) -> None:
    rec = record(f"{server}/good.pth", GOOD_SHA)
    path = fetch(rec, progress=False)
    assert path == cache / "efficientnet_b0" / "good.pth"
    assert path.read_bytes() == PAYLOAD
    assert leftovers(cache) == ["good.pth"]
    # a second fetch is served from the cache, even offline
    assert fetch(rec, progress=False, offline=True) == path


def test_hash_prefix_is_accepted(server: str, tmp_path: Path) -> None:
    out = download(f"{server}/good.pth", tmp_path / "f.pth", GOOD_SHA[:8], progress=False)
    assert out.read_bytes() == PAYLOAD


def test_wrong_checksum_leaves_nothing(server: str, cache: Path) -> None:
    with pytest.raises(DownloadError, match=r"sha256 mismatch.*discarded"):
        fetch(record(f"{server}/good.pth", "deadbeef"), progress=False)
    assert leftovers(cache) == []


def test_server_dying_mid_transfer_leaves_nothing(server: str, cache: Path) -> None:
    with pytest.raises(DownloadError, match=r"dies\.pth"):
        fetch(record(f"{server}/dies.pth", None), progress=False)
    assert leftovers(cache) == []


def test_404_is_reported(server: str, cache: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(record(f"{server}/missing.pth", None), progress=False)
    assert leftovers(cache) == []


def test_interrupted_download_leaves_nothing(
    server: str, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C halfway through: the temporary file is removed and KeyboardInterrupt propagates."""
    real_chunk = hub._CHUNK
    monkeypatch.setattr(hub, "_CHUNK", 64 * 1024)
    calls = {"n": 0}
    real_update = hub.tqdm.update

    def interrupt(self, n=1):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_update(self, n)

    monkeypatch.setattr(hub.tqdm, "update", interrupt)
    with pytest.raises(KeyboardInterrupt):
        fetch(record(f"{server}/good.pth", GOOD_SHA), progress=False)
    assert calls["n"] == 3 and real_chunk > 64 * 1024
    assert leftovers(cache) == []


def test_offline_error_names_file_and_place(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EFFNET_OFFLINE", "1")
    rec = record("https://example.invalid/weights-1234abcd.pth", "1234abcd")
    with pytest.raises(OfflineError) as info:
        fetch(rec, progress=False)
    message = str(info.value)
    assert "https://example.invalid/weights-1234abcd.pth" in message
    assert str(cache / "efficientnet_b0" / "weights-1234abcd.pth") in message
    assert "EFFNET_OFFLINE" in message


def test_unreachable_host_says_where_to_put_the_file(cache: Path) -> None:
    # a port on 127.0.0.1 with nothing listening: connection refused at once
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(DownloadError, match="place the file at"):
        fetch(record(f"http://127.0.0.1:{port}/w.pth", None), progress=False)
    assert leftovers(cache) == []


def test_cache_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EFFNET_CACHE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert hub.cache_dir() == tmp_path / "th" / "effnet"
    monkeypatch.delenv("TORCH_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.cache_dir() == tmp_path / "xdg" / "torch" / "effnet"
