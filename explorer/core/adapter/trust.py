"""Which model code this user lets checkpoints run: keyed by the code's sha256, revocable.

An imported model's checkpoint names a Python file (or a TorchScript / torch.export archive) by path, and
rebuilding the model runs it. A checkpoint someone sent could name any file, and a file trusted last week may
have been edited since. So a file is trusted together with its fingerprint (the sha256 of the file and, for a
file inside a package, of the package's other ``.py`` files, which run too), and together with the calls the
user saw (class name, constructor arguments, script arguments): a checkpoint that passes other arguments to a
trusted class is asked about again, showing them.

The store is ``trusted_code.json`` in the user's config folder (see :func:`trust_store_path`)::

    {"version": 2, "trusted": [{"path", "what", "sha256", "files": {name: {"sha256", "size", "mtime"}},
                                "calls": [{"class", "kwargs", "script_args"}], "trusted_at"}]}

:func:`trusted_code` lists it for a preferences page, :func:`revoke_trust` takes an entry away, and
:func:`trust_question` writes the question the GUI shows for an :class:`UntrustedCodeError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write
from .errors import UntrustedCodeError

STORE_VERSION = 2
MAX_PACKAGE_FILES = 400  # a package's .py files that are fingerprinted with the named file (bounded work)
MAX_HASH_BYTES = 8 << 30

_lock = threading.Lock()
# Trusted for this process only (persist=False, or a read-only config folder): key -> entry.
_session: dict[str, dict[str, Any]] = {}
# The calls the last UntrustedCodeError for a path asked about, so that trust_code(path) after the user said
# yes approves exactly what they were shown.
_pending: dict[str, list[dict[str, Any]]] = {}


def trust_store_path() -> Path:
    """$LATENT_EXPLORER_CONFIG/trusted_code.json, else $XDG_CONFIG_HOME/latent-explorer/... (~/.config/...)."""
    env = os.environ.get("LATENT_EXPLORER_CONFIG")
    if env:
        return Path(env).expanduser() / "trusted_code.json"
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "latent-explorer" / "trusted_code.json"


def _key(path: str | os.PathLike[str]) -> str:
    return str(Path(path).expanduser().resolve())


# ------------------------------------------------------------ fingerprints
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            done += len(chunk)
            if done > MAX_HASH_BYTES:
                break  # a pathological file: its first 8 GB identify it well enough
    return digest.hexdigest()


def _package_top(path: Path) -> Path | None:
    folder, top = path.parent, None
    while (folder / "__init__.py").exists():
        top = folder
        if folder.parent == folder:
            break
        folder = folder.parent
    return top


def code_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files whose code runs when ``path`` is imported: the file itself, plus every ``.py`` file of the
    package it belongs to (a package's ``__init__`` and siblings run too). At most :data:`MAX_PACKAGE_FILES`."""
    path = Path(path).expanduser().resolve()
    files = [path]
    top = _package_top(path) if path.suffix == ".py" else None
    if top is not None:
        for other in sorted(top.rglob("*.py")):
            if len(files) >= MAX_PACKAGE_FILES:
                break
            if other != path and "__pycache__" not in other.parts and other.is_file():
                files.append(other.resolve())
    return files


def code_fingerprint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"sha256", "size", "mtime", "files": {name: {"sha256", "size", "mtime"}}}`` of the code at ``path``
    (names relative to the named file's folder's package root; the named file first)."""
    path = Path(path).expanduser().resolve()
    files = code_files(path)
    top = _package_top(path) if path.suffix == ".py" else None
    base = top.parent if top is not None else path.parent
    out: dict[str, dict[str, Any]] = {}
    for f in files:
        st = f.stat()
        try:
            name = str(f.relative_to(base))
        except ValueError:
            name = str(f)
        out[name] = {"sha256": _sha256(f), "size": int(st.st_size), "mtime": float(st.st_mtime)}
    overall = hashlib.sha256(json.dumps(sorted((k, v["sha256"]) for k, v in out.items())).encode()).hexdigest()
    main = out[next(iter(out))]
    return {"sha256": overall, "size": main["size"], "mtime": main["mtime"], "files": out}


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, one line per file: size and modification time."""
    lines = []
    a, b = old.get("files") or {}, new.get("files") or {}
    for name in list(b) + [n for n in a if n not in b]:
        before, after = a.get(name), b.get(name)
        if before is None:
            lines.append(f"{name}: new file ({after['size']:,} bytes, modified {_when(after['mtime'])})")
        elif after is None:
            lines.append(f"{name}: removed")
        elif before.get("sha256") != after["sha256"]:
            lines.append(f"{name}: changed, {before.get('size', 0):,} -> {after['size']:,} bytes, modified "
                         f"{_when(before.get('mtime', 0))} -> {_when(after['mtime'])}")
    return lines or ["the fingerprint differs"]


# ------------------------------------------------------------ the store
def _read_store() -> list[dict[str, Any]]:
    try:
        text = trust_store_path().read_text(encoding="utf-8")
        if len(text) > 16 << 20:
            return []
        doc = json.loads(text)
    except (OSError, ValueError, RecursionError):
        return []  # missing or damaged: nothing trusted yet (never an error)
    items = doc.get("trusted", []) if isinstance(doc, dict) else []
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str):  # version 1 kept paths only: kept, but never trusted without asking again
            out.append({"path": item, "sha256": None, "files": {}, "calls": [], "trusted_at": None})
        elif isinstance(item, dict) and isinstance(item.get("path"), str):
            calls = item.get("calls") if isinstance(item.get("calls"), list) else []
            out.append({**item, "calls": [c for c in calls if isinstance(c, dict)]})
    return out


def _write_store(entries: list[dict[str, Any]]) -> bool:
    text = json.dumps({"version": STORE_VERSION, "trusted": entries}, indent=1)
    try:
        atomic_write(trust_store_path(), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        return True
    except OSError:
        return False  # a read-only home still works for this session


def _entry(key: str) -> dict[str, Any] | None:
    if key in _session:
        return _session[key]
    return next((e for e in _read_store() if e.get("path") == key), None)


def normal_call(class_name: str | None = None, kwargs: dict[str, Any] | None = None,
                script_args: list[str] | None = None) -> dict[str, Any]:
    """What a checkpoint asks the code to do, in the form the store compares."""
    return {"class": class_name or "", "kwargs": dict(kwargs or {}), "script_args": list(script_args or [])}


def _same_call(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return json.dumps(normal_call(a.get("class"), a.get("kwargs"), a.get("script_args")), sort_keys=True) == \
        json.dumps(normal_call(b.get("class"), b.get("kwargs"), b.get("script_args")), sort_keys=True)


def is_trusted(path: str | os.PathLike[str], call: dict[str, Any] | None = None) -> bool:
    """True when the code at ``path`` is trusted as it is now (same sha256) and, when ``call`` is given, with
    that class and those arguments."""
    try:
        check_trust(path, call=call)
        return True
    except UntrustedCodeError:
        return False


def check_trust(path: str | os.PathLike[str], *, what: str = "Python file",
                call: dict[str, Any] | None = None) -> None:
    """Raise :class:`UntrustedCodeError` unless ``path`` (as it is now) and ``call`` are trusted."""
    key = _key(path)
    with _lock:
        entry = _entry(key)
    try:
        current = code_fingerprint(key)
    except OSError as exc:
        from .errors import AdapterError

        raise AdapterError(f"{key}: cannot read ({exc.strerror or exc})") from exc
    asked = [normal_call(call.get("class"), call.get("kwargs"), call.get("script_args"))] if call else []

    def refuse(reason: str, message: str, changes: list[str] | None = None) -> None:
        with _lock:
            _pending[key] = asked
        raise UntrustedCodeError(message, key, what=what, reason=reason, changes=changes,
                                 call=asked[0] if asked else None, fingerprint=current)

    if entry is None:
        refuse("new", f"this model runs the {what} {key}, which you have not trusted on this computer; loading it "
                      "would run that code. If you trust it, import it again with `latent-explorer import` (or "
                      "confirm in the explorer's dialog).")
    elif not entry.get("sha256"):
        refuse("legacy", f"this model runs the {what} {key}, which was trusted by an earlier version that kept no "
                         "fingerprint of it; confirm again (or import it again) to run it.")
    elif entry["sha256"] != current["sha256"]:
        changes = describe_changes(entry, current)
        refuse("changed", f"this model runs the {what} {key}, which has changed since you trusted it "
                          f"({'; '.join(changes[:3])}); confirm again (or import it again) to run the new code.",
               changes)
    elif call and not any(_same_call(c, asked[0]) for c in entry.get("calls", [])):
        refuse("call", f"this model runs {asked[0]['class'] or 'the code'} from {key} with arguments you have not "
                       f"seen: {json.dumps(asked[0]['kwargs'])}"
                       + (f", script arguments {asked[0]['script_args']}" if asked[0]["script_args"] else "")
                       + "; confirm to run it with these arguments.")


def trust_code(path: str | os.PathLike[str], persist: bool = True, *, call: dict[str, Any] | None = None,
               what: str | None = None) -> None:
    """Trust the code at ``path`` as it is now (its sha256), and ``call`` (class + arguments) with it.

    Without ``call``, the calls the last :class:`UntrustedCodeError` for this path asked about are approved:
    what the user was just shown. ``persist=False`` trusts for this process only. Importing a model calls this
    for the file and arguments the user gave.
    """
    key = _key(path)
    fp = code_fingerprint(key)
    with _lock:
        calls = [normal_call(call.get("class"), call.get("kwargs"), call.get("script_args"))] if call \
            else list(_pending.pop(key, []))
        stored = _read_store()
        old = _session.get(key) or next((e for e in stored if e.get("path") == key), None)
        keep = [c for c in (old or {}).get("calls", [])] if old and old.get("sha256") == fp["sha256"] else []
        for c in calls:
            if not any(_same_call(c, k) for k in keep):
                keep.append(c)
        entry = {"path": key, "what": what or (old or {}).get("what") or ("Python file" if key.endswith(".py")
                                                                           else "archive"),
                 "sha256": fp["sha256"], "size": fp["size"], "mtime": fp["mtime"], "files": fp["files"],
                 "calls": keep, "trusted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        _session[key] = entry
        if persist:
            entries = [e for e in stored if e.get("path") != key] + [entry]
            if _write_store(entries):
                _session.pop(key, None)  # the store is the truth again (revocable from another process)


def trusted_code() -> list[dict[str, Any]]:
    """The trust list for a preferences page: one dict per trusted file, with ``status`` "unchanged",
    "changed", "missing" or "no fingerprint" (trusted by an older version) and the calls approved for it."""
    with _lock:
        entries = {e["path"]: dict(e) for e in _read_store()}
        for key, e in _session.items():
            entries[key] = {**e, "session_only": True}
    out = []
    for key, e in entries.items():
        status = "no fingerprint"
        if e.get("sha256"):
            try:
                status = "unchanged" if code_fingerprint(key)["sha256"] == e["sha256"] else "changed"
            except OSError:
                status = "missing"
        out.append({"path": key, "what": e.get("what") or "Python file", "sha256": e.get("sha256"),
                    "trusted_at": e.get("trusted_at"), "calls": e.get("calls", []), "status": status,
                    "session_only": bool(e.get("session_only"))})
    return sorted(out, key=lambda d: d["path"])


def revoke_trust(path: str | os.PathLike[str] | None = None) -> int:
    """Stop trusting ``path`` (or everything when None). Returns how many entries were removed."""
    key = _key(path) if path is not None else None
    with _lock:
        stored = _read_store()
        keep = [e for e in stored if key is not None and e.get("path") != key]
        removed = len(stored) - len(keep)
        if removed:
            _write_store(keep)
        for k in list(_session):
            if key is None or k == key:
                del _session[k]
                removed += 1
        _pending.pop(key, None) if key else _pending.clear()
    return removed


# ------------------------------------------------------------ the question
@dataclass
class TrustQuestion:
    """What to ask before running a checkpoint's code. The GUI shows ``title``, ``text`` and ``details``
    as they are (e.g. a QMessageBox with detailed text) and calls ``trust_code(path)`` on yes."""

    title: str
    text: str
    details: str
    path: str
    what: str
    reason: str
    sha256: str
    changes: list[str] = field(default_factory=list)
    call: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    origin: dict[str, Any] = field(default_factory=dict)


def _origin(checkpoint: str | os.PathLike[str] | None) -> dict[str, Any]:
    if checkpoint is None:
        return {}
    out: dict[str, Any] = {"file": str(Path(checkpoint).expanduser().absolute())}
    try:
        from .. import checkpoint as ckpt

        doc = ckpt.inspect(checkpoint)  # metadata only: reads no tensors, runs nothing
    except Exception:  # noqa: BLE001 - the question must still be askable for a damaged file
        return out
    imported = doc.get("imported_from") if isinstance(doc.get("imported_from"), dict) else {}
    for key, value in (("weights", imported.get("weights")), ("archive", imported.get("archive")),
                       ("created", doc.get("created") or doc.get("saved_at")),
                       ("software", doc.get("software_version") or doc.get("version")),
                       ("dataset", doc.get("dataset"))):
        if isinstance(value, (str, int, float)) and str(value):
            out[key] = str(value)[:500]
    return out


def trust_question(error: UntrustedCodeError, checkpoint: str | os.PathLike[str] | None = None) -> TrustQuestion:
    """The exact question to ask about ``error`` for the checkpoint file ``checkpoint``: where the checkpoint
    came from, which file would run, its sha256, what changed since it was trusted, and the arguments."""
    origin = _origin(checkpoint)
    call = error.call or {}
    fp = error.fingerprint or {}
    name = Path(checkpoint).name if checkpoint else "This model"
    where = f" (in {Path(origin['file']).parent})" if origin.get("file") else ""
    came = ""
    if origin.get("weights") or origin.get("archive"):
        came = f" It says it was imported from {origin.get('weights') or origin.get('archive')}."
    target = call.get("class") or ""
    args = json.dumps(call.get("kwargs") or {})
    runs = f"{error.what} {error.path}"
    if target:
        runs += f" and calls {target}(**{args})"
    lead = {
        "new": "which you have not trusted on this computer.",
        "legacy": "which an earlier version trusted without keeping a fingerprint of it.",
        "changed": "which has changed since you trusted it.",
        "call": "with arguments you have not confirmed before.",
    }.get(error.reason, "")
    text = (f"{name}{where} asks to run the {runs}, {lead}{came}\n\nOpening it runs that code with your "
            "permissions. Continue only if you know where this file and the checkpoint come from and trust them.")
    lines = [f"File that would run: {error.path}", f"sha256: {fp.get('sha256', '?')}"]
    if fp.get("size") is not None:
        lines.append(f"size: {fp['size']:,} bytes, modified {_when(fp.get('mtime', 0))}")
    if len(fp.get("files") or {}) > 1:
        lines.append(f"with the {len(fp['files']) - 1} other .py file(s) of its package")
    if target:
        lines.append(f"Calls: {target}")
        lines.append(f"Constructor arguments: {args}")
    if call.get("script_args"):
        lines.append(f"Script arguments: {call['script_args']}")
    if error.changes:
        lines.append("Changed since you trusted it:")
        lines += [f"  {c}" for c in error.changes]
    if origin:
        lines.append("Checkpoint: " + ", ".join(f"{k} {v}" for k, v in origin.items()))
    return TrustQuestion(title="Run this model's code?", text=text, details="\n".join(lines), path=error.path,
                         what=error.what, reason=error.reason, sha256=str(fp.get("sha256", "")),
                         changes=list(error.changes), call=dict(call), checkpoint=origin.get("file"),
                         origin=origin)
