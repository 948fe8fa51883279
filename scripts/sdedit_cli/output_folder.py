"""The batch's output folder: its lock, the settings it was made with, the manifest (one line per image) and the
outputs, each written atomically and never over a file the batch did not write itself."""
import datetime
import fcntl
import json
import os
import pathlib
import uuid

from sdedit_cli.template import node_order

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
MANIFEST = "manifest.jsonl"
SETTINGS = "batch_settings.json"
LOCK = ".sdedit-batch.lock"
TMP_PREFIX, TMP_SUFFIX = ".sdedit-batch-", ".tmp"


class SettingsChanged(RuntimeError):
    """--output holds results made with other settings."""


def list_inputs(input_dir: pathlib.Path) -> list[tuple[str, pathlib.Path]]:
    """(name relative to the folder, path) of every image under it, hidden files and folders left out."""
    found = []
    for path in sorted(input_dir.rglob("*")):
        rel = path.relative_to(input_dir)
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not any(p.startswith(".") for p in rel.parts):
            found.append((rel.as_posix(), path))
    return found


def default_targets(names: list[str]) -> dict[str, str]:
    """Output name per input: a.jpg -> a.png; where two inputs would share one (a.jpg, a.png), both keep their
    extension (a.jpg.png, a.png.png)."""
    plain = {n: str(pathlib.PurePosixPath(n).with_suffix(".png")) for n in names}
    counts = {}
    for target in plain.values():
        counts[target] = counts.get(target, 0) + 1
    return {n: (t if counts[t] == 1 else n + ".png") for n, t in plain.items()}


def read_manifest(path: pathlib.Path) -> list[dict]:
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a line cut off by a crash of the machine; the image is simply redone
    return records


def free_name(output_dir: pathlib.Path, target: str, taken: set[str]) -> str:
    """`target`, or target-1.png, -2, ... : the first name that is neither a file on disk nor claimed."""
    pure = pathlib.PurePosixPath(target)
    candidate, n = target, 0
    while candidate in taken or (output_dir / candidate).exists() or (output_dir / candidate).is_symlink():
        n += 1
        candidate = str(pure.with_name(f"{pure.stem}-{n}{pure.suffix}"))
    return candidate


class Manifest:
    """Appends one complete JSON line per image, flushed and synced before the output is put in place."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.file = open(path, "a", encoding="utf-8")

    def append(self, record: dict) -> None:
        self.file.write(json.dumps(record, sort_keys=True) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


def settings_diff(old: dict, new: dict) -> list[str]:
    def shown(value):
        return "the workflow's" if value is None else repr(value)
    changed = [f"{k}: {shown(old.get(k))} -> {shown(new.get(k))}" for k in ("workflow_file", "ckpt", "ckpt_bytes",
                                                                         "strength", "prompt", "seed")
               if old.get(k) != new.get(k)]
    old_wf, new_wf = old.get("workflow") or {}, new.get("workflow") or {}
    nodes = sorted({k for k in set(old_wf) | set(new_wf) if old_wf.get(k) != new_wf.get(k)}, key=node_order)
    if nodes:
        changed.append("workflow nodes " + ", ".join(nodes))
    return changed


class OutputFolder:
    """--output while a batch writes to it: locked (`with OutputFolder(path) as folder:`), so two batches never
    write to one folder; `plan` says what is left to do, `write` puts one result in place."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.manifest_path = path / MANIFEST
        self.manifest = None
        self.temps = set()  # temporary files of this run not yet put in place (removed on close)

    def __enter__(self):
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.path / LOCK, "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise SystemExit(f"Another batch is writing to {self.path}; wait for it or choose another --output.")
        return self

    def __exit__(self, *exc):
        for path in self.temps:
            path.unlink(missing_ok=True)
        if self.manifest is not None:
            self.manifest.close()
        self._lock.close()

    def resume_plan(self, inputs: list[tuple[str, pathlib.Path]], settings: dict, current: str, seed_of, *,
             redo: bool, retry_failed: bool) -> tuple[list[dict], int, int]:
        """(images to run, done earlier, failed earlier); records the settings. Each image to run: name, path, seed
        (`seed_of(name)`), target (its output name) and ours (the target is an output of an earlier run, replaced).
        Raises SettingsChanged where results made with other settings are there and `redo` is false."""
        records = read_manifest(self.manifest_path)
        latest = {}
        for record in records:
            latest[record["name"]] = record
        ours = {r["output_name"] for r in records if r.get("output_name")}  # files some run of the batch wrote
        other = sorted({r["workflow_hash"] for r in latest.values()} - {current})
        settings_path = self.path / SETTINGS
        if other and not redo:
            old = json.loads(settings_path.read_text()) if settings_path.is_file() else {}
            what = "; ".join(settings_diff(old, settings)) or f"workflow hash {', '.join(other)} -> {current}"
            n = sum(r["workflow_hash"] != current for r in latest.values())
            raise SettingsChanged(
                f"{self.path} holds {n} result(s) made with other settings ({what}). Not mixing them: run with another "
                "--output, or add --redo to redo those images with the new settings (their outputs are replaced).")
        # Stale temporary files of an interrupted run: only the batch's own names are removed.
        for stale in self.path.glob(f"{TMP_PREFIX}*{TMP_SUFFIX}"):
            stale.unlink(missing_ok=True)
        settings_tmp = self.path / f"{TMP_PREFIX}settings{TMP_SUFFIX}"
        settings_tmp.write_text(json.dumps(settings, indent=1, sort_keys=True))
        os.replace(settings_tmp, settings_path)

        targets = default_targets([name for name, _ in inputs])
        todo, done_before, failed_before, claimed = [], 0, 0, set()
        for name, path in inputs:
            record = latest.get(name)
            same = record is not None and record["workflow_hash"] == current
            if same and record["status"] == "ok" and (self.path / record["output_name"]).is_file():
                done_before += 1
                claimed.add(record["output_name"])
                continue
            if same and record["status"] == "error" and not retry_failed:
                failed_before += 1
                continue
            if record is not None and record.get("output_name") and not (self.path / record["output_name"]).exists():
                target, replace = record["output_name"], False  # ours, gone (or never put in place): written again
            elif record is not None and record.get("output_name"):
                target, replace = record["output_name"], True  # ours, made with other settings (--redo): replaced
            else:
                target, replace = free_name(self.path, targets[name], claimed | ours), False
            claimed.add(target)
            todo.append({"name": name, "path": str(path), "seed": seed_of(name), "target": target, "ours": replace})
        return todo, done_before, failed_before

    def open_manifest(self) -> None:
        if self.manifest is None:
            self.manifest = Manifest(self.manifest_path)

    def write(self, row: dict, task: dict, current: str) -> bool:
        """Records one image's result (a manifest line) and, where it succeeded, puts its PNG in place: True then."""
        self.open_manifest()
        record = {"name": task["name"], "input": task["path"], "seed": task["seed"], "workflow_hash": current,
                  "output": None, "output_name": None, "seconds": row["seconds"], "worker": row["worker"],
                  "server_restarts": row["server_restarts"], "status": row["status"], "error": row["error"] or None,
                  "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        if row["status"] != "ok":
            self.manifest.append(record)
            return False
        tmp = self.path / f"{TMP_PREFIX}{uuid.uuid4().hex}{TMP_SUFFIX}"
        self.temps.add(tmp)
        with open(tmp, "wb") as f:
            f.write(row["png"])
            f.flush()
            os.fsync(f.fileno())
        target, replace = task["target"], task["ours"]
        # Manifest line first, then the file appears in one step: a crash in between leaves a line whose output is
        # missing, and the next run redoes that image.
        while True:
            path = self.path / target
            if not replace and (path.exists() or path.is_symlink()):
                target = free_name(self.path, target, set())  # a file appeared there since planning: not ours
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            self.manifest.append({**record, "output": str(path), "output_name": target})
            if replace:
                os.replace(tmp, path)  # a file an earlier run of the batch wrote for this very image
                break
            try:
                os.link(tmp, path)  # never clobbers: fails if a file appeared there in the meantime
                tmp.unlink()
                break
            except FileExistsError:
                target = free_name(self.path, target, set())
        self.temps.discard(tmp)
        return True
