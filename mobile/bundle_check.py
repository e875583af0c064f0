"""What a reader of a bundle checks before it runs anything from it (`anyir restore`, `anyir profile BUNDLE`):
the manifest parses, matches the sha256 written beside it (manifest.json.sha256: the file table covers every
other file, this covers the table), is schema 1 and valid, its artifact ids are unique, and every path it names
stays inside the bundle: no absolute path, no `..`, no symbolic link on the way (a link can point anywhere).
Each problem is one AnyIRError line.

`escapes(root, manifest)` lists the path problems of a whole manifest, for `verify_bundle` to report.
"""
from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

from anyir_core.errors import AnyIRError

SCHEMA_ID = "anyir-mobile/manifest/1"
MANIFEST_SHA = "manifest.json.sha256"  # `sha256sum` format, written after manifest.json (mobile/bundle.py)


def manifest_sha_problem(root: str | Path, text: bytes) -> str | None:
    """Why manifest.json's bytes `text` do not match the sha256 written beside them, or None when they do."""
    import hashlib
    spath = Path(root) / MANIFEST_SHA
    if spath.is_symlink() or not spath.is_file():
        return (f"{MANIFEST_SHA}: missing (a bundle from an anyir before it was written, or a damaged one); "
                "rebuild it with `anyir build`")
    want = spath.read_bytes()[:64].decode("ascii", "replace")
    if want != hashlib.sha256(text).hexdigest():
        return f"manifest.json: changed (its sha256 differs from {MANIFEST_SHA}); the bundle is damaged"
    return None


def load_manifest(root: str | Path) -> dict:
    """The manifest of bundle folder `root`, checked (see the module docstring)."""
    from .bundle import schema_errors
    root = Path(root)
    mpath = root / "manifest.json"
    if not root.is_dir():
        raise AnyIRError(f"{root}: not a bundle folder")
    if not mpath.is_file():
        raise AnyIRError(f"{root}: not a bundle (no manifest.json); build one with `anyir build`")
    if mpath.is_symlink():
        raise AnyIRError(f"{mpath}: a symbolic link; a bundle holds no links")
    text = mpath.read_bytes()
    try:
        m = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise AnyIRError(f"{mpath}: not valid JSON ({str(e)[:80]}); the bundle is damaged") from None
    if not isinstance(m, dict):
        raise AnyIRError(f"{mpath}: a JSON {type(m).__name__}, not a manifest; the bundle is damaged")
    changed = manifest_sha_problem(root, text)
    if changed:
        raise AnyIRError(f"{root}: {changed}")
    if m.get("schema") != SCHEMA_ID:
        raise AnyIRError(f"{mpath}: schema {m.get('schema')!r} is not {SCHEMA_ID!r} (a newer or foreign bundle: "
                         "this anyir reads schema 1)")
    problems = escapes(root, m)  # (before the schema: its path pattern would say less)
    if problems:
        raise AnyIRError(f"{root}: {problems[0]}; refusing to use it")
    errors = schema_errors(m)
    if errors:
        raise AnyIRError(f"{mpath}: does not match its schema ({errors[0]}); run `anyir bundle verify {root}`")
    ids = [a["id"] for a in m["artifacts"]]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise AnyIRError(f"{mpath}: artifact id {dup[0]!r} is listed more than once; the bundle is damaged")
    for a in m["artifacts"]:  # the artifact's own checksum and the file table's must agree (the file is hashed later)
        for rel in a["paths"].values():
            listed = m["files"].get(rel)
            if listed is not None and listed["sha256"] != a["sha256"]:
                raise AnyIRError(f"{mpath}: {rel}: the artifact's sha256 and the file table's differ; the bundle is "
                                 f"damaged (`anyir bundle verify {root}`)")
    return m


def inside(root: str | Path, rel: str) -> Path:
    """`root / rel`, refused when `rel` is absolute, climbs with `..`, or passes through a symbolic link."""
    problem = _path_problem(Path(root), rel)
    if problem:
        raise AnyIRError(f"{root}: {problem}; refusing to use it")
    return Path(root) / rel


def escapes(root: str | Path, manifest: dict) -> list[str]:
    """One line per path of `manifest` (artifact paths and records, the file table) that leaves the bundle or
    goes through a link, and per symbolic link anywhere in the bundle."""
    root = Path(root)
    rels = []
    for a in manifest.get("artifacts") if isinstance(manifest.get("artifacts"), list) else []:
        if isinstance(a, dict):
            for key in ("paths", "record"):
                if isinstance(a.get(key), dict):
                    rels += [r for r in a[key].values() if isinstance(r, str)]
    if isinstance(manifest.get("files"), dict):
        rels += [r for r in manifest["files"] if isinstance(r, str)]
    problems = [p for p in (_path_problem(root, r) for r in dict.fromkeys(rels)) if p]
    for dirpath, dirnames, filenames in os.walk(root):  # os.walk does not follow links
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                problems.append(f"{p.relative_to(root).as_posix()}: a symbolic link (a bundle holds no links; this "
                                f"one points to {os.readlink(p)})")
    return list(dict.fromkeys(problems))


def _path_problem(root: Path, rel: str) -> str | None:
    parts = PurePosixPath(rel).parts
    if not rel or PurePosixPath(rel).is_absolute() or "\\" in rel or ".." in parts or rel in (".", "./"):
        return f"the path {rel!r} leaves the bundle"
    p = root
    for part in parts:
        p = p / part
        if p.is_symlink():
            return f"{rel}: goes through a symbolic link ({p.relative_to(root).as_posix()} -> {os.readlink(p)})"
    return None
