"""Downloads against an HTTP server on 127.0.0.1: good file, wrong checksum, a server that dies
mid-transfer (with or without a Content-Length), 404, an interrupted or killed download, stale
partial files, two downloads of one file at once, offline mode. The cache never keeps a partial
file."""

from __future__ import annotations

import hashlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from effnet.specs import PreprocessConfig
from effnet.weights import DownloadError, OfflineError, WeightRecord, download, fetch, hub

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
REQUESTS: dict[str, int] = {}


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def do_GET(self) -> None:
        REQUESTS[self.path] = REQUESTS.get(self.path, 0) + 1
        if self.path == "/nolength-dies.pth":
            # HTTP/1.0 without Content-Length: the body ends when the connection does, so a
            # server dying after a third looks, on the wire, like a complete small file
            self.send_response(200)
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 3])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        elif self.path == "/nolength.pth":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif self.path in ("/chunked.pth", "/chunked-dies.pth"):
            self.protocol_version = "HTTP/1.1"
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            third = len(PAYLOAD) // 3
            self._chunk(PAYLOAD[:third])
            if self.path == "/chunked-dies.pth":
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._chunk(PAYLOAD[third:])
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/portal.pth":
            page = b"<html><body>Please log in to the hotel wifi</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
        elif self.path == "/gzip.pth":
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(bytes(100))
        elif self.path.startswith("/slow"):
            # 1 MiB in 16 pieces over ~0.8 s: long enough to start a second download or kill
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            step = len(PAYLOAD) // 16
            try:
                for i in range(0, len(PAYLOAD), step):
                    self.wfile.write(PAYLOAD[i : i + step])
                    self.wfile.flush()
                    time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif self.path == "/good.pth":
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


# -- no checksum: completeness must still be proven ---------------------------------------------


def test_no_length_and_early_eof_never_lands_in_the_cache(server: str, tmp_path: Path) -> None:
    """It was cached as complete: a third of the file, named like the whole."""
    dest = tmp_path / "cache" / "w.pth"
    with pytest.raises(DownloadError) as info:
        download(f"{server}/nolength-dies.pth", dest, progress=False)
    message = str(info.value)
    assert "Content-Length" in message and "sha256" in message and str(dest) in message
    assert leftovers(tmp_path / "cache") == []


def test_no_length_is_fine_when_a_checksum_proves_the_file(server: str, tmp_path: Path) -> None:
    out = download(f"{server}/nolength.pth", tmp_path / "w.pth", GOOD_SHA, progress=False)
    assert out.read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download(f"{server}/nolength-dies.pth", tmp_path / "x.pth", GOOD_SHA, progress=False)
    assert leftovers(tmp_path) == ["w.pth"]


def test_chunked_transfer_is_framed_so_it_needs_no_checksum(server: str, tmp_path: Path) -> None:
    out = download(f"{server}/chunked.pth", tmp_path / "w.pth", progress=False)
    assert out.read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match=r"chunked-dies\.pth"):
        download(f"{server}/chunked-dies.pth", tmp_path / "x.pth", progress=False)
    assert leftovers(tmp_path) == ["w.pth"]


def test_a_web_page_or_compressed_body_is_not_a_weights_file(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="text/html"):
        download(f"{server}/portal.pth", tmp_path / "w.pth", progress=False)
    with pytest.raises(DownloadError, match="gzip"):
        download(f"{server}/gzip.pth", tmp_path / "w.pth", progress=False)
    assert leftovers(tmp_path) == []


def test_download_errors_are_effnet_errors(server: str, tmp_path: Path) -> None:
    from effnet.errors import EffnetError

    with pytest.raises(EffnetError) as info:
        download(f"{server}/missing.pth", tmp_path / "w.pth", progress=False)
    assert isinstance(info.value, OSError)
    assert issubclass(OfflineError, EffnetError) and issubclass(OfflineError, FileNotFoundError)


def test_unwritable_cache_names_the_fix(server: str, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(DownloadError, match="EFFNET_CACHE"):
        download(f"{server}/good.pth", tmp_path / "file" / "w.pth", progress=False)


# -- partial files: never kept, never confusing --------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_partial_files_are_cleaned_and_ignored(server: str, tmp_path: Path) -> None:
    """kill -9 mid-download left a hidden ``.partial`` forever."""
    folder = tmp_path / "cache"
    folder.mkdir()
    host = hub._host_tag()
    dead = folder / f".good.pth.{host}.{_dead_pid()}.k1ll3d.partial"
    dead.write_bytes(PAYLOAD[:1000])
    old = folder / ".other.pth.Zq9x_.partial"  # any layout, untouched for days
    old.write_bytes(b"x")
    week_ago = time.time() - 7 * 24 * 3600
    os.utime(old, (week_ago, week_ago))
    live = folder / f".good.pth.{host}.{os.getpid()}.alive1.partial"  # a download in progress
    live.write_bytes(b"y")
    elsewhere = folder / ".good.pth.otherhost.1.fresh1.partial"  # another machine, recent
    elsewhere.write_bytes(b"z")
    out = download(f"{server}/good.pth", folder / "good.pth", GOOD_SHA, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert not dead.exists() and not old.exists()
    assert live.exists() and elsewhere.exists()


def test_two_downloads_of_one_file_do_not_collide(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "w.pth"
    url = f"{server}/slow-two.pth"
    results: list[object] = []

    def get() -> None:
        try:
            results.append(download(url, dest, GOOD_SHA, progress=False))
        except Exception as exc:  # surfaced by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=get) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.1)
    for t in threads:
        t.join(30)
    assert results == [dest, dest]
    assert dest.read_bytes() == PAYLOAD
    assert REQUESTS["/slow-two.pth"] == 1  # the second waited and took the first one's file
    assert leftovers(tmp_path / "cache") == ["w.pth"]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_kill_9_mid_download_then_a_fresh_download(server: str, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    code = (
        "import sys; from pathlib import Path; from effnet.weights.hub import download; "
        "download(sys.argv[1], Path(sys.argv[2]), progress=False)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, f"{server}/slow-kill.pth", str(folder / "w.pth")]
    )
    deadline = time.time() + 60
    while time.time() < deadline and not list(folder.glob(".w.pth.*.partial")):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(folder.glob(".w.pth.*.partial")), "the killed download left no partial file"
    assert not (folder / "w.pth").exists()
    out = download(f"{server}/good.pth", folder / "w.pth", GOOD_SHA, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert leftovers(folder) == ["w.pth"]
