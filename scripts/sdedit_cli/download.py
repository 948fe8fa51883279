"""Fetches one file over HTTP(S) with a progress bar, resuming an interrupted download, and refuses it unless its
size and SHA-256 are the pinned ones. A script's downloader (scripts/img2img.py --download): the pack itself does
no network I/O. Standard library only.

    python scripts/sdedit_cli/download.py URL DEST [--size N] [--sha256 HEX]
"""
import argparse
import hashlib
import http.client
import os
import pathlib
import sys
import time
import urllib.error
import urllib.request

# The SD1.5 checkpoint ComfyUI's own docs and examples name: Comfy-Org's archive of runwayml's v1.5, fp16 (2.13 GB).
# Pinned to the archive's commit that added the file (Aug 2024); size and SHA-256 are that commit's Git LFS pointer.
SD15 = {
    "name": "v1-5-pruned-emaonly-fp16.safetensors",
    "url": "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/"
           "4fddeb7f9096623f1b77f4708feb96126a08a0cf/v1-5-pruned-emaonly-fp16.safetensors",
    "size": 2_132_696_762,
    "sha256": "e9476a13728cd75d8279f6ec8bad753a66a1957ca375a1464dc63b37db6e3916",
    "license": "CreativeML Open RAIL-M",
}
CHUNK = 1 << 20


class DownloadFailed(RuntimeError):
    """The message says what happened and what to do; a partial file is kept where a rerun can resume it."""


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


class _Progress:
    def __init__(self, total: int | None, done: int, stream):
        self.total, self.done, self.stream = total, done, stream
        self.start_done, self.started, self.shown = done, time.monotonic(), 0.0
        self.tty = stream.isatty()
        self.last_decile = -1

    def update(self, n: int, final: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        rate = (self.done - self.start_done) / max(now - self.started, 1e-6)
        if self.total:
            fraction = min(self.done / self.total, 1.0)
            decile = int(fraction * 10)
            if not final and (now - self.shown < 0.25 if self.tty else decile == self.last_decile):
                return
            self.last_decile = decile
            bar = "#" * int(fraction * 30)
            eta = (self.total - self.done) / rate if rate > 0 else 0
            line = (f"  [{bar:<30}] {fraction:6.1%}  {_mb(self.done)} of {_mb(self.total)}  {rate / 1e6:.1f} MB/s"
                    f"  {int(eta) // 60}m{int(eta) % 60:02d}s left")
        else:
            if not final and now - self.shown < (0.25 if self.tty else 5):
                return
            line = f"  {_mb(self.done)}  {rate / 1e6:.1f} MB/s"
        self.shown = now
        self.stream.write(("\r" + line if self.tty else line + "\n") + ("\n" if final and self.tty else ""))
        self.stream.flush()


def sha256_of(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, dest: pathlib.Path, size: int | None = None, sha256: str | None = None,
          stream=sys.stderr, timeout: float = 30) -> pathlib.Path:
    """Downloads `url` to `dest` (through `dest`.part, which a later call resumes with an HTTP Range request) and
    checks its size and SHA-256 before the file takes its name. A file already at `dest` of the right size is kept.
    Raises DownloadFailed with what happened and what to do."""
    dest = pathlib.Path(dest)
    if dest.is_file() and (size is None or dest.stat().st_size == size):
        return dest
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    by_hand = (f"Or download it by other means (a browser, curl -L -C - -o \"{dest}\" \"{url}\") and pass its path "
               f"with --ckpt.")
    if size is None or have < size:
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            if error.code == 416 and have:  # the range starts at the end: the part is whole (checked below)
                response = None
            else:
                raise DownloadFailed(f"{url}: the server answered HTTP {error.code} {error.reason}. {by_hand}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise DownloadFailed(f"could not reach {urllib.request.urlparse(url).netloc} ({reason}): no network, "
                                 f"or a proxy in the way? Run again once you are online. {by_hand}") from None
        if response is not None:
            with response:
                resumed = have and response.status == 206
                if have and not resumed:
                    stream.write("  (the server does not resume downloads: starting again from 0)\n")
                    have = 0
                length = response.headers.get("Content-Length")
                total = size or (have + int(length) if length else None)
                verb = f"Resuming at {_mb(have)}" if resumed else "Downloading"
                stream.write(f"{verb} {url}\n  to {dest}" + (f" ({_mb(total)})" if total else "") + "\n")
                progress = _Progress(total, have, stream)
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with open(part, "ab" if resumed else "wb") as out:
                        for block in iter(lambda: response.read(CHUNK), b""):
                            out.write(block)
                            progress.update(len(block))
                except (OSError, http.client.HTTPException) as error:
                    progress.update(0, final=True)
                    raise DownloadFailed(f"the download stopped at {_mb(part.stat().st_size)} ({error}); run the "
                                         f"same command again to resume it ({part} is kept).") from None
                progress.update(0, final=True)
    got = part.stat().st_size
    if size is not None and got != size:
        if got > size:
            part.unlink()
            raise DownloadFailed(f"{url} gave {got:,} bytes, more than the expected {size:,}: refused and deleted. "
                                 f"Is the URL the file it should be?")
        raise DownloadFailed(f"the download ended at {got:,} of {size:,} bytes; run the same command again to "
                             f"resume it ({part} is kept).")
    if sha256:
        stream.write(f"Checking the SHA-256 of {_mb(got)}...\n")
        actual = sha256_of(part)
        if actual != sha256.lower():
            part.unlink()
            raise DownloadFailed(f"{url}: SHA-256 {actual} is not the expected {sha256}: the file is refused and "
                                 f"deleted (a different or corrupted file).")
    os.replace(part, dest)
    return dest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("dest", type=pathlib.Path)
    parser.add_argument("--size", type=int)
    parser.add_argument("--sha256")
    args = parser.parse_args(argv)
    try:
        print(fetch(args.url, args.dest, args.size, args.sha256))
    except DownloadFailed as failure:
        sys.exit(f"Download failed: {failure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
