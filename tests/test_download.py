"""scripts/sdedit_cli/download.py, --download's downloader, against a file served over loopback: the progress bar,
resuming after a dropped connection, a wrong size or SHA-256 refused, and no network said plainly."""
import hashlib
import io
import sys

import pytest
from conftest import REPO
from loopback import FileServer, closed_port

sys.path.insert(0, str(REPO / "scripts"))
from sdedit_cli import download  # noqa: E402

PAYLOAD = bytes(range(256)) * 12_000  # 3 MB: several chunks of 1 MiB


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_download_shows_its_progress_and_is_checked(tmp_path):
    log = io.StringIO()
    with FileServer(PAYLOAD) as server:
        path = download.fetch(server.url, tmp_path / "m.safetensors", len(PAYLOAD), sha(PAYLOAD), stream=log)
    assert path.read_bytes() == PAYLOAD and not (tmp_path / "m.safetensors.part").exists()
    text = log.getvalue()
    assert f"Downloading {server.url}" in text and "100.0%" in text and "of 3.1 MB" in text
    assert "Checking the SHA-256" in text


def test_an_interrupted_download_resumes_where_it_stopped(tmp_path):
    dest = tmp_path / "m.safetensors"
    with FileServer(PAYLOAD, cut_after=1_500_000) as server:
        with pytest.raises(download.DownloadFailed, match="run the same command again to resume"):
            download.fetch(server.url, dest, len(PAYLOAD), sha(PAYLOAD), stream=io.StringIO())
        kept = (tmp_path / "m.safetensors.part").stat().st_size
        assert 0 < kept < len(PAYLOAD) and not dest.exists()
        log = io.StringIO()
        download.fetch(server.url, dest, len(PAYLOAD), sha(PAYLOAD), stream=log)
    assert server.requests == [None, f"bytes={kept}-"], "the second request asks only for the rest"
    assert dest.read_bytes() == PAYLOAD
    assert f"Resuming at {kept / 1e6:,.1f} MB" in log.getvalue()


def test_a_server_that_cannot_resume_starts_again(tmp_path):
    dest = tmp_path / "m.safetensors"
    (tmp_path / "m.safetensors.part").write_bytes(PAYLOAD[:1000])
    log = io.StringIO()
    with FileServer(PAYLOAD, ranges=False) as server:
        download.fetch(server.url, dest, len(PAYLOAD), sha(PAYLOAD), stream=log)
    assert dest.read_bytes() == PAYLOAD and "starting again from 0" in log.getvalue()


def test_a_wrong_checksum_is_refused_and_nothing_is_kept(tmp_path):
    dest = tmp_path / "m.safetensors"
    with FileServer(PAYLOAD) as server:
        with pytest.raises(download.DownloadFailed, match=f"SHA-256 {sha(PAYLOAD)} is not the expected"):
            download.fetch(server.url, dest, len(PAYLOAD), sha(b"another file"), stream=io.StringIO())
    assert not dest.exists() and not (tmp_path / "m.safetensors.part").exists()


def test_a_file_larger_than_pinned_is_refused(tmp_path):
    with FileServer(PAYLOAD) as server:
        with pytest.raises(download.DownloadFailed, match="more than the expected"):
            download.fetch(server.url, tmp_path / "m", len(PAYLOAD) - 1, None, stream=io.StringIO())
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.part").exists()


def test_no_network_is_said_plainly_with_the_way_on(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/m.safetensors"
    with pytest.raises(download.DownloadFailed) as failure:
        download.fetch(url, tmp_path / "m.safetensors", 10, None, stream=io.StringIO())
    assert "could not reach 127.0.0.1" in str(failure.value) and "no network" in str(failure.value)
    assert "--ckpt" in str(failure.value) and "curl -L -C -" in str(failure.value)
    assert not any(tmp_path.iterdir()), "nothing is left behind"


def test_a_missing_file_is_named_with_the_http_status(tmp_path):
    with FileServer(PAYLOAD) as server:
        with pytest.raises(download.DownloadFailed, match="HTTP 404"):
            download.fetch(server.url + "-not-there", tmp_path / "m", 10, None, stream=io.StringIO())


def test_the_pinned_checkpoint_is_the_one_comfyuis_docs_name():
    assert download.SD15["name"] == "v1-5-pruned-emaonly-fp16.safetensors"
    assert download.SD15["url"].startswith("https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/")
    assert download.SD15["url"].endswith("/" + download.SD15["name"])
    assert len(download.SD15["sha256"]) == 64 and download.SD15["size"] > 2_000_000_000
