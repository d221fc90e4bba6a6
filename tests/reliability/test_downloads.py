"""Downloads, caches (issue 12): a download that is not proven complete never lands in the cache,
a killed download's partial file does not stay forever, and a cache that cannot be written still
lets `effnet choose` print its answer."""

from __future__ import annotations

import errno
import http.server
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from effnet.weights import DownloadError, download
from helpers.faults import cli

PAYLOAD = bytes(range(256)) * 1024  # 256 KiB


class _Dies(http.server.BaseHTTPRequestHandler):
    """Sends a third of the file, then closes: with no Content-Length (HTTP/1.0, the end of the
    body is the end of the connection) or with one that promises more."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        if self.path == "/short.pth":
            self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD[: len(PAYLOAD) // 3])
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Dies)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.mark.parametrize("name", ["nolength.pth", "short.pth"])
def test_a_download_cut_short_never_lands_in_the_cache(
    server: str, tmp_path: Path, name: str
) -> None:
    """Without a checksum, a server that sent no Content-Length and died had its half file
    cached as complete."""
    dest = tmp_path / "cache" / name
    with pytest.raises(DownloadError) as caught:
        download(f"{server}/{name}", dest, progress=False, timeout=10)
    assert name in str(caught.value)
    assert not dest.exists()
    assert [p.name for p in dest.parent.iterdir() if p.name.endswith(".partial")] == []


def test_a_killed_downloads_partial_file_is_cleaned(server: str, tmp_path: Path) -> None:
    """kill -9 mid-download left a hidden .partial forever."""
    from effnet.weights.hub import _host_tag

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process that is gone: what a kill -9 leaves behind
    folder = tmp_path / "cache"
    folder.mkdir()
    partial = folder / f".b0.pth.{_host_tag()}.{dead.pid}.k3j2.partial"
    partial.write_bytes(PAYLOAD[:1000])
    with pytest.raises(DownloadError):
        download(f"{server}/short.pth", folder / "other.pth", progress=False, timeout=10)
    assert not partial.exists()


def test_choose_with_a_read_only_cache_prints_the_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It measured everything, then exited on PermissionError without printing the answer."""
    import effnet.files as files

    def denied(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied", str(kwargs.get("dir", "")))

    monkeypatch.setenv("EFFNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(files.tempfile, "mkstemp", denied)  # every file effnet writes
    argv = ["choose", "--latency-ms", "100000", "--models", "tf_efficientnet_lite0",
            "--res", "32", "--runtime", "eager", "--repeats", "1", "--threads", "1"]  # fmt: skip
    with pytest.warns(UserWarning, match="cannot write"):
        code, out, err = cli(argv, capsys)
    assert code == 0, err
    assert "tf_efficientnet_lite0" in out and "Traceback" not in err
