"""The pictures (and the video) the shipped templates load (example_workflows/input/), offered to the host's
input folder when the server loads the pack, so every template runs as loaded from the template browser.

Only where no file of that name exists: a user's file is never overwritten, nothing is ever deleted, and a
folder that cannot be written (read-only, missing) is logged and left alone. One log line says what was
offered. In-process use (scripts, tests without a server) has no template browser and offers nothing.
"""
import logging
import os
import pathlib

import folder_paths

PICTURES = pathlib.Path(__file__).resolve().parents[1] / "example_workflows" / "input"
SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".mp4"}
PREFIX = "[SDEdit]"


def example_pictures() -> list[pathlib.Path]:
    return sorted(p for p in PICTURES.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)


def _copy_new(source: pathlib.Path, target: pathlib.Path) -> bool:
    """Writes `source` to `target` only if no file (or link) of that name exists; False if one does."""
    data = source.read_bytes()
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # atomic "only if absent"
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    except OSError:
        target.unlink(missing_ok=True)  # only the partial file this call created
        raise
    return True


def offer(input_dir: str | os.PathLike | None = None) -> dict:
    """Copies the templates' pictures into `input_dir` (the host's input folder by default) where absent.
    Returns {"copied": [...], "kept": [...], "failed": {name: reason}} and logs one line."""
    folder = pathlib.Path(input_dir if input_dir is not None else folder_paths.get_input_directory())
    result = {"copied": [], "kept": [], "failed": {}}
    try:
        pictures = example_pictures()
    except OSError as error:
        logging.warning(f"{PREFIX} the templates' example pictures cannot be read ({error}); "
                        "the templates that load them need their pictures uploaded by hand")
        return result
    for picture in pictures:
        try:
            result["copied" if _copy_new(picture, folder / picture.name) else "kept"].append(picture.name)
        except OSError as error:
            result["failed"][picture.name] = error.strerror or str(error)
    parts = []
    if result["copied"]:
        parts.append(f"copied {', '.join(result['copied'])}")
    if result["kept"]:
        parts.append(f"left the existing {', '.join(result['kept'])} as they are")
    if result["failed"]:
        parts.append("could not write " + ", ".join(f"{n} ({why})" for n, why in result["failed"].items())
                     + ": upload them by hand to run the templates that load them")
    if parts:
        line = f"{PREFIX} the templates' example pictures in {folder}: {'; '.join(parts)}"
        (logging.warning if result["failed"] else logging.info)(line)
    return result
