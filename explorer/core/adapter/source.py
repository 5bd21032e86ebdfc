"""Running a user's model file: plain modules, files inside packages, and training scripts.

Research code comes in three shapes, and each must import with no edits:

* a plain module (imports, classes, constants): run as it is;
* a file inside a package (``models/vanilla_vae.py`` doing ``from models import BaseVAE`` or
  ``from .types_ import *``): imported under its dotted name with the folder above the top package on
  ``sys.path``, isolated from other packages of the same name;
* a training script (pytorch/examples ``vae/main.py``, ``dcgan/main.py``): it parses arguments, loads data sets
  and trains at import time. It is never run as a whole: :func:`extract_definitions` keeps the imports, the
  definitions and the module-level values the named class needs (``nz = int(opt.nz)`` with ``opt`` from the
  script's own argparse defaults, or from ``script_args``), and drops everything else.

Then :func:`load_target` finds the named class (or a module-level ``nn.Module`` instance) and
:func:`construct` calls it with arguments checked against its real signature.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import io
import json
import re
import sys
import threading
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from .errors import AdapterError

# Calls that mean "this file does work when imported" (the attribute or function name called).
_HAZARD_ATTRS = {"parse_args", "parse_known_args", "backward", "step", "fit", "makedirs", "mkdir", "save",
                 "load", "load_state_dict", "urlretrieve", "urlopen", "download", "system", "run", "Popen",
                 "train", "test", "evaluate", "main"}
_HAZARD_NAMES = {"DataLoader", "open", "input", "exit", "quit", "main", "train", "test", "run", "fit"}
_REPO_MARKERS = (".git", "pyproject.toml", "setup.py", "setup.cfg", "requirements.txt")
_PROTECTED = {"torch", "numpy", "explorer", "safetensors", "PySide6", "typing_extensions"}


def _exc_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def parse_class_ref(ref: str) -> tuple[Path, str]:
    """``"path/to/file.py:ClassName"`` -> (absolute path, class name). Windows drive letters are fine."""
    text = str(ref).strip()
    file_part, sep, name = text.rpartition(":")
    if not sep or not file_part or not name or "/" in name or "\\" in name:
        raise AdapterError(f"--class {ref!r}: expected FILE.py:ClassName, e.g. models/vae.py:VAE")
    if not name.isidentifier():
        raise AdapterError(f"--class {ref!r}: {name!r} is not a Python class name")
    return Path(file_part).expanduser().absolute(), name


def _parse(path: Path) -> ast.Module:
    if not path.exists():
        raise AdapterError(
            f"model class file {path} not found (imported models reference their class file: put it back, "
            "or import the model again)"
        )
    if path.is_dir():
        raise AdapterError(f"{path} is a folder; name the .py file that defines the model class")
    if path.suffix != ".py":
        raise AdapterError(f"{path.name}: the model class must be in a .py file")
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise AdapterError(f"{path}: cannot read ({exc})") from exc
    except SyntaxError as exc:
        raise AdapterError(f"{path.name} line {exc.lineno}: syntax error: {exc.msg}") from exc


def list_classes(path: str | Path) -> list[dict[str, Any]]:
    """The classes a Python file defines, found by parsing it (nothing is run), for an import wizard.

    Each: ``{"name", "bases", "line", "params": [{"name", "default", "required"}]}`` (``__init__`` parameters
    after ``self``; ``default`` is the literal default, or None when there is none or it is not a literal).
    """
    path = Path(path)
    if not path.exists():
        raise AdapterError(f"{path}: file not found")
    tree = _parse(path)
    out = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        params: list[dict[str, Any]] = []
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                args = item.args.posonlyargs + item.args.args
                defaults = [None] * (len(args) - len(item.args.defaults)) + list(item.args.defaults)
                pairs = list(zip(args, defaults))[1:]  # drop self
                pairs += list(zip(item.args.kwonlyargs, item.args.kw_defaults))
                for arg, default in pairs:
                    try:
                        value = ast.literal_eval(default) if default is not None else None
                        has_default = default is not None
                    except ValueError:
                        value, has_default = None, True
                    params.append({"name": arg.arg, "default": value, "required": not has_default})
        out.append({"name": node.name, "bases": [ast.unparse(b) for b in node.bases], "line": node.lineno,
                    "params": params})
    return out


# ============================================================ is it a script?
def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    names = [n for n in ast.walk(node.test) if isinstance(n, ast.Name)]
    consts = [n.value for n in ast.walk(node.test) if isinstance(n, ast.Constant)]
    return any(n.id == "__name__" for n in names) and "__main__" in consts


def _call_name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _hazard(node: ast.stmt, defined_functions: set[str]) -> str | None:
    """Why running this top-level statement would do a script's work, or None."""
    if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
        return "a loop"
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return "a with-block"
    if isinstance(node, (ast.If, ast.Try)) and not _is_main_guard(node):
        blocks = [node.body, node.orelse] + ([h.body for h in node.handlers] + [node.finalbody]
                                             if isinstance(node, ast.Try) else [])
        for block in blocks:
            for sub in block:
                why = _hazard(sub, defined_functions)
                if why:
                    return why
        return None
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return None
    if _is_main_guard(node):
        return None
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            name = _call_name(sub)
            if name in ("parse_args", "parse_known_args"):
                return "parses command-line arguments"
            if any(k.arg == "download" for k in sub.keywords):
                return "downloads a data set"
            if name == "DataLoader":
                return "loads a data set"
            if isinstance(sub.func, ast.Attribute) and name in _HAZARD_ATTRS:
                return f"calls {ast.unparse(sub.func)}()"
            if isinstance(sub.func, ast.Name) and (name in _HAZARD_NAMES or
                                                   (isinstance(node, ast.Expr) and name in defined_functions)):
                return f"calls {name}()"
    return None


def find_script_work(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, what) of each top-level statement that does a script's work when the file is imported."""
    functions = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    out = []
    for node in tree.body:
        why = _hazard(node, functions)
        if why:
            out.append((node.lineno, why))
    return out


# ============================================================ extracting what a class needs
def _bound_names(node: ast.stmt) -> set[str]:
    """Names a top-level statement binds in the module."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    out = set()
    for t in targets:
        for n in ast.walk(t):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                out.add(n.id)
    return out


def _mutated_names(node: ast.stmt) -> set[str]:
    """Names whose object a statement changes: ``args.cuda = ...``, ``parser.add_argument(...)``."""
    bases: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        bases = [t for t in node.targets if isinstance(t, (ast.Attribute, ast.Subscript))]
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, (ast.Attribute, ast.Subscript)):
        bases = [node.target]
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) \
            and isinstance(node.value.func, ast.Attribute) and node.value.func.attr not in _HAZARD_ATTRS:
        bases = [node.value.func]
    out = set()
    for base in bases:
        while isinstance(base, (ast.Attribute, ast.Subscript)):
            base = base.value
        if isinstance(base, ast.Name):
            out.add(base.id)
    return out


def _free_names(node: ast.AST) -> set[str]:
    """Names a statement reads from the module's globals (a function's own locals excluded)."""
    loaded: set[str] = set()

    def visit(n: ast.AST, local: frozenset[str]) -> None:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for d in getattr(n, "decorator_list", []):
                visit(d, local)
            for d in n.args.defaults + [d for d in n.args.kw_defaults if d is not None]:
                visit(d, local)
            if not isinstance(n, ast.Lambda):
                for a in [*n.args.posonlyargs, *n.args.args, *n.args.kwonlyargs, n.args.vararg, n.args.kwarg]:
                    if a is not None and a.annotation is not None:
                        visit(a.annotation, local)
                if n.returns is not None:
                    visit(n.returns, local)
            args = {a.arg for a in [*n.args.posonlyargs, *n.args.args, *n.args.kwonlyargs] if a}
            args |= {a.arg for a in (n.args.vararg, n.args.kwarg) if a is not None}
            body = n.body if isinstance(n.body, list) else [n.body]
            stored = {s.id for b in body for s in ast.walk(b) if isinstance(s, ast.Name)
                      and isinstance(s.ctx, (ast.Store, ast.Del))}
            stored |= {a.asname or a.name.split(".")[0] for b in body for s in ast.walk(b)
                       if isinstance(s, (ast.Import, ast.ImportFrom)) for a in s.names}
            globals_declared = {g for b in body for s in ast.walk(b) if isinstance(s, ast.Global) for g in s.names}
            inner = local | ((args | stored) - globals_declared)
            for b in body:
                visit(b, frozenset(inner))
            return
        if isinstance(n, ast.ClassDef):
            for d in n.decorator_list + n.bases + [k.value for k in n.keywords]:
                visit(d, local)
            for b in n.body:
                visit(b, local)  # class-body names do not reach methods, but reading module names does
            return
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id not in local:
            loaded.add(n.id)
        for child in ast.iter_child_nodes(n):
            visit(child, local)

    visit(node, frozenset())
    return loaded


def _filter_block(stmts: list[ast.stmt], needed: set[str], modules: frozenset[str] = frozenset()
                  ) -> list[ast.stmt]:
    """The statements of a block that define or change what ``needed`` names. ``modules``: names bound by
    imports; a call on a module (``torch.manual_seed(...)``, ``random.seed(...)``) changes no value a class
    reads, so it is not kept for that."""
    kept: list[ast.stmt] = []
    for node in stmts:
        if _is_main_guard(node):
            continue
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            kept.append(node)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a for a in node.names if a.name == "*" or (a.asname or a.name).split(".")[0] in needed]
            if names:
                clone = copy.copy(node)
                clone.names = names
                kept.append(clone)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name in needed:
                kept.append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Expr)):
            mutated = _mutated_names(node) - (modules if isinstance(node, ast.Expr) else frozenset())
            if (_bound_names(node) | mutated) & needed:
                kept.append(node)
        elif isinstance(node, ast.If):
            body, orelse = _filter_block(node.body, needed, modules), _filter_block(node.orelse, needed, modules)
            if body or orelse:
                clone = copy.copy(node)
                clone.body = body or [ast.copy_location(ast.Pass(), node)]
                clone.orelse = orelse
                kept.append(clone)
        elif isinstance(node, ast.Try):
            body = _filter_block(node.body, needed, modules)
            if body:
                clone = copy.copy(node)
                clone.body = body
                clone.handlers = [copy.copy(h) for h in node.handlers]
                for h, orig in zip(clone.handlers, node.handlers):
                    h.body = _filter_block(orig.body, needed, modules) or [ast.copy_location(ast.Pass(), orig)]
                clone.orelse = _filter_block(node.orelse, needed, modules)
                clone.finalbody = _filter_block(node.finalbody, needed, modules)
                kept.append(clone)
        # loops, with-blocks, bare calls, raise/assert: the script's work, dropped
    return kept


class _ParseArgsRewriter(ast.NodeTransformer):
    """``parser.parse_args()`` -> ``__latent_explorer_parse__(parser, "parse_args")``: the script's own
    defaults (or the script arguments the user gave), never our own command line."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("parse_args", "parse_known_args"):
            return ast.copy_location(ast.Call(
                func=ast.Name("__latent_explorer_parse__", ast.Load()),
                args=[node.func.value, ast.Constant(node.func.attr)], keywords=[]), node)
        return node


def extract_definitions(tree: ast.Module, wanted: str) -> tuple[ast.Module, list[str]]:
    """The part of a script that defines ``wanted``: (module to run, module-level values kept)."""
    needed = {wanted}
    for node in tree.body:  # a required constructor argument may come from the module's value of its name
        if isinstance(node, ast.ClassDef) and node.name == wanted:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    args = item.args.posonlyargs + item.args.args
                    needed |= {a.arg for a in args[1:len(args) - len(item.args.defaults)]}
    modules = frozenset(n for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                        for n in _bound_names(node))
    for _ in range(50):
        kept = _filter_block(tree.body, needed, modules)
        more = set(needed)
        for node in kept:
            more |= _free_names(node)
        if more == needed:
            break
        needed = more
    values = sorted({n for node in kept if not isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef,
                                                                   ast.AsyncFunctionDef, ast.ClassDef))
                     for n in _bound_names(node) | _nested_bound(node)} & needed)
    module = ast.Module(body=[_ParseArgsRewriter().visit(copy.deepcopy(n)) for n in kept], type_ignores=[])
    return ast.fix_missing_locations(module), values


def _nested_bound(node: ast.stmt) -> set[str]:
    out = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            out.add(sub.id)
    return out


def _defined_in_dropped(tree: ast.Module, name: str) -> int | None:
    for node in tree.body:
        if name in _nested_bound(node) or name in _bound_names(node):
            return node.lineno
    return None


def _parse_helper(script_args: Sequence[str], path: Path) -> Any:
    def parse(parser: Any, method: str) -> Any:
        if not isinstance(parser, argparse.ArgumentParser):
            raise AdapterError(f"{path.name}: {method}() is called on a {type(parser).__name__}")
        for action in parser._actions:  # the defaults are what we want; a required flag has none
            if not script_args:
                action.required = False
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                ns, rest = parser.parse_known_args(list(script_args))
        except SystemExit:
            raise AdapterError(f"{path.name}: its arguments {list(script_args)} were refused: "
                               f"{err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else '?'}"
                               ) from None
        if rest and method == "parse_args":
            raise AdapterError(f"{path.name} does not know the script arguments {rest}")
        return (ns, rest) if method == "parse_known_args" else ns

    return parse


# ============================================================ imports, isolated
def package_of(path: Path) -> tuple[Path, str] | None:
    """(folder above the top package, dotted module name) when ``path`` is inside a package."""
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").exists():
        parts.insert(0, folder.name)
        if folder.parent == folder:
            break
        folder = folder.parent
    if len(parts) == 1:
        return None
    return folder, ".".join(parts)


def repository_root(path: Path) -> Path | None:
    """The nearest folder above ``path`` that looks like a repository's root (.git, pyproject.toml, ...)."""
    for folder in list(path.parents)[:8]:
        if any((folder / m).exists() for m in _REPO_MARKERS):
            return folder
    return None


def search_path_for(path: Path) -> list[str]:
    """The folders a user's file needs on ``sys.path``: its own, the package root, the repository root."""
    out = [path.parent]
    pkg = package_of(path)
    if pkg is not None:
        out.append(pkg[0])
    repo = repository_root(path)
    if repo is not None:
        out.append(repo)
    return list(dict.fromkeys(str(p.resolve()) for p in out))


def _local_names(roots: Sequence[str]) -> set[str]:
    names = set()
    for root in roots:
        try:
            for child in Path(root).iterdir():
                if child.suffix == ".py":
                    names.add(child.stem)
                elif child.is_dir() and (child / "__init__.py").exists():
                    names.add(child.name)
        except OSError:
            continue
    return {n for n in names if n.isidentifier() and n not in _PROTECTED
            and n not in getattr(sys, "stdlib_module_names", ())}


@contextlib.contextmanager
def isolated_imports(roots: Sequence[str]) -> Iterator[None]:
    """Put ``roots`` first on ``sys.path`` while a user's code is imported, with module names that those
    folders define (``models``, ``layers``, ``utils``) fresh: another repository's ``models`` already loaded is
    set aside and put back afterwards, and what this import loaded under those names is taken out again, so
    two repositories with a ``models`` package never see each other's code."""
    names = _local_names(roots)

    def ours(mod_name: str) -> bool:
        return mod_name.split(".")[0] in names

    stash = {k: v for k, v in sys.modules.items() if ours(k)}
    for k in stash:
        del sys.modules[k]
    entries = [r for r in roots if r not in sys.path]
    sys.path[:0] = entries
    try:
        yield
    finally:
        for e in entries:
            with contextlib.suppress(ValueError):
                sys.path.remove(e)
        for k in [k for k in sys.modules if ours(k)]:
            del sys.modules[k]
        sys.modules.update(stash)


_lock = threading.RLock()
_cache: dict[tuple[str, tuple[str, ...]], tuple[int, int, Any, dict[str, Any]]] = {}


def constant_choices(path: str | Path, name: str) -> list[Any]:
    """The literal values a script assigns to ``name`` anywhere at module level (``nc = 3`` / ``nc = 1`` in
    the branches of ``if opt.dataset == ...``), in order."""
    out: list[Any] = []
    for node in ast.walk(_parse(Path(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id == name and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, (int, float, str, bool)) and node.value.value not in out:
            out.append(node.value.value)
    return out[:8]


def load_user_module(path: str | Path, wanted: str | None = None, script_args: Sequence[str] = (),
                     search_path: Sequence[str] | None = None, preset: Mapping[str, Any] | None = None
                     ) -> tuple[Any, dict[str, Any]]:
    """Run a user's file as a module; returns (module, info). Cached until the file changes.

    ``info``: ``{"mode": "module" | "package" | "script", "search_path", "dotted", "script_work": [(line,
    what)], "values": [names kept from a script]}``. A script is never run whole: only what ``wanted``
    needs (see the module docstring).
    """
    path = Path(path).expanduser().absolute()
    tree = _parse(path)
    work = find_script_work(tree)
    script = bool(work and wanted)
    # A script's extract depends on the name wanted; a module is one module whatever is taken from it.
    preset = dict(preset or {}) if script else {}
    key = (str(path.resolve()), ((wanted or "") if script else "",) + tuple(script_args)
           + tuple(f"{k}={v!r}" for k, v in sorted(preset.items())))
    stat = path.stat()
    with _lock:
        cached = _cache.get(key)
        if cached and cached[:2] == (stat.st_mtime_ns, stat.st_size):
            return cached[2], cached[3]
        roots = list(search_path) if search_path else search_path_for(path)
        roots = list(dict.fromkeys([*roots, *search_path_for(path)]))
        pkg = package_of(path)
        info: dict[str, Any] = {"mode": "module", "file": str(path), "search_path": roots, "dotted": pkg[1] if pkg else None,
                                "script_work": work, "values": []}
        stem = re.sub(r"\W", "_", path.stem)
        unique = f"_latent_explorer_user_{stem}_{hashlib.sha1(repr(key).encode()).hexdigest()[:10]}"
        with isolated_imports(roots):
            if script:
                info["mode"] = "script"
                code_tree, info["values"] = extract_definitions(tree, wanted)
                module = _exec(path, unique, code_tree, pkg, wanted, work, tree,
                               {"__latent_explorer_parse__": _parse_helper(script_args, path), **preset})
            elif pkg is not None:
                info["mode"] = "package"
                module = _import_package_module(path, pkg[1])
            else:
                module = _exec(path, unique, tree, None, wanted, [], tree, {})
        _cache[key] = (stat.st_mtime_ns, stat.st_size, module, info)
        return module, info


def _script_failure(path: Path, wanted: str | None, work: list[tuple[int, str]], exc: BaseException,
                    tree: ast.Module) -> AdapterError:
    line, what = work[0]
    msg = (f"{path.name} runs a training script when imported (line {line}: {what}); Latent Explorer ran only "
           f"its imports, definitions and the values {wanted} needs, and that failed: {_exc_line(exc)}")
    name = getattr(exc, "name", None)
    if isinstance(exc, NameError) and name:
        where = _defined_in_dropped(tree, name)
        if where is not None:
            msg += (f". {name} is set by the script's own work (line {where}), e.g. from its arguments: give them "
                    f"with --script-args (as you ran the script), or move {wanted} into a file of its own")
    return AdapterError(msg)


def _exec(path: Path, name: str, tree: ast.Module, pkg: tuple[Path, str] | None, wanted: str | None,
          work: list[tuple[int, str]], original: ast.Module, extra: dict[str, Any]) -> Any:
    spec = importlib.util.spec_from_file_location(name, str(path))
    if spec is None:
        raise AdapterError(f"{path.name}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    if pkg is not None:
        module.__package__ = pkg[1].rpartition(".")[0]
    module.__dict__.update(extra)
    # In sys.modules while it runs: dataclasses, pickling and typing look their module up there.
    sys.modules[name] = module
    try:
        exec(compile(tree, str(path), "exec"), module.__dict__)  # noqa: S102 - the user's own (trusted) code
    except BaseException as exc:  # the user's code may raise anything, SystemExit included
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        if isinstance(exc, AdapterError):
            raise
        if work:
            raise _script_failure(path, wanted, work, exc, original) from exc
        if isinstance(exc, ImportError) and "relative import" in str(exc):
            raise AdapterError(f"running {path.name} failed: it uses relative imports but its folder is no "
                               "package (no __init__.py); make them absolute imports") from exc
        raise AdapterError(f"running {path.name} failed: {_exc_line(exc)}") from exc
    return module


def _import_package_module(path: Path, dotted: str) -> Any:
    try:
        module = importlib.import_module(dotted)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise AdapterError(f"importing {dotted} (from {path}) failed: {_exc_line(exc)}") from exc
    if Path(getattr(module, "__file__", "") or "").resolve() != path.resolve():
        raise AdapterError(f"importing {dotted} found {module.__file__}, not {path}; rename one of them")
    return module


# ============================================================ the class (or instance) and its arguments
def load_target(path: str | Path, name: str, script_args: Sequence[str] = (),
                search_path: Sequence[str] | None = None, preset: Mapping[str, Any] | None = None
                ) -> tuple[Any, Any, dict[str, Any]]:
    """(the ``nn.Module`` subclass or module-level ``nn.Module`` instance ``name``, its module, load info).
    ``preset``: module values a script would set from its arguments, given instead (see import_model)."""
    path = Path(path).expanduser().absolute()
    module, info = load_user_module(path, name, script_args, search_path, preset)
    target = getattr(module, name, None)
    if target is None:
        found = sorted(n for n, v in vars(module).items()
                       if (isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == module.__name__)
                       or isinstance(v, nn.Module))
        hint = f"; module classes and instances there: {', '.join(found)}" if found else \
            "; it defines no nn.Module classes"
        raise AdapterError(f"{path.name} has no class {name!r}{hint}")
    if isinstance(target, nn.Module):
        return target, module, info
    if not (isinstance(target, type) and issubclass(target, nn.Module)):
        raise AdapterError(f"{path.name}: {name} is not a torch.nn.Module subclass (nor an nn.Module instance)")
    return target, module, info


def load_class(path: str | Path, class_name: str) -> type[nn.Module]:
    """The ``nn.Module`` subclass ``class_name`` defined in (or imported by) the file at ``path``."""
    target, _, _ = load_target(path, class_name)
    if isinstance(target, nn.Module):
        raise AdapterError(f"{Path(path).name}: {class_name} is an nn.Module instance, not a class")
    return target


def signature_text(cls: Any) -> str:
    try:
        return f"{cls.__name__}{inspect.signature(cls)}"
    except (TypeError, ValueError):
        return f"{cls.__name__}(...)"


def _annotation_class(cls: type, param: inspect.Parameter, module: Any) -> type | None:
    ann = param.annotation
    try:
        hints = typing.get_type_hints(cls.__init__, globalns=getattr(module, "__dict__", None))
        ann = hints.get(param.name, ann)
    except Exception:  # noqa: BLE001 - unresolvable annotations: use the raw one
        if isinstance(ann, str):
            ann = getattr(module, ann, None) or getattr(sys.modules.get(cls.__module__), ann, None)
    origin = typing.get_origin(ann)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        options = [a for a in typing.get_args(ann) if a is not type(None)]
        ann = options[0] if len(options) == 1 else None
    if isinstance(ann, type) and ann not in (dict, list, tuple, str, int, float, bool, object) \
            and not issubclass(ann, Mapping):
        return ann
    if param.default is not inspect.Parameter.empty and dataclasses.is_dataclass(param.default):
        return type(param.default)
    return None


def _config_object(config_cls: type, value: dict[str, Any], param: str) -> Any:
    """A constructor's config object (pythae's ``model_config: VAEConfig``) from its JSON form."""
    value = dict(value)
    if value.get("name") == config_cls.__name__:
        value.pop("name")  # pythae's model_config.json names its own class
    if dataclasses.is_dataclass(config_cls):
        fields = {f.name for f in dataclasses.fields(config_cls)}
        unknown = sorted(set(value) - fields)
        if unknown:
            raise AdapterError(f"{param}: {config_cls.__name__} has no field(s) {', '.join(unknown)}; its fields: "
                               f"{', '.join(sorted(fields))}")
        for f in dataclasses.fields(config_cls):  # JSON has lists where configs keep tuples (input_dim)
            if isinstance(value.get(f.name), list) and "tuple" in str(f.type).lower():
                value[f.name] = tuple(value[f.name])
    try:
        if hasattr(config_cls, "from_dict") and not dataclasses.is_dataclass(config_cls):
            return config_cls.from_dict(value)
        return config_cls(**value)
    except Exception as exc:
        raise AdapterError(f"{param}: cannot build {config_cls.__name__} from {json.dumps(value)}: "
                           f"{_exc_line(exc)}") from exc


_SIMPLE = (int, float, str, bool, tuple)


def resolve_kwargs(cls: type, kwargs: Mapping[str, Any], module: Any) -> tuple[dict[str, Any], list[str]]:
    """Check ``kwargs`` against ``cls``'s real signature and complete them: (arguments to call with, notes).

    Unknown names and missing required arguments raise :class:`AdapterError` showing the signature. A
    required argument missing from ``kwargs`` is taken from the module's value of the same name when it has
    one (``Generator(ngpu)`` in the DCGAN example, whose module sets ``ngpu``); a JSON object given for an
    argument annotated with a config class is turned into that class.
    """
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        return dict(kwargs), []
    params = sig.parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    named = {n: p for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    out = dict(kwargs)
    notes = []
    # A saved config.json (diffusers, transformers) carries its own metadata as "_class_name",
    # "_diffusers_version", ...: not constructor arguments.
    meta = [k for k in kwargs if k.startswith("_") and k not in named and not takes_any]
    for k in meta:
        out.pop(k)
    if meta:
        notes.append(f"left out {', '.join(meta)} (metadata of a saved config, not constructor arguments)")
    unknown = [k for k in out if k not in named]
    if unknown and not takes_any:
        close = [n for n in named if n.lower().replace("_", "") in {u.lower().replace("_", "") for u in unknown}]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise AdapterError(f"cannot construct {cls.__name__}: it takes no argument(s) {', '.join(unknown)}{hint}; "
                           f"its signature is {signature_text(cls)}")
    for n, p in named.items():
        if n in out:
            target = _annotation_class(cls, p, module) if isinstance(out[n], dict) else None
            if target is not None:
                out[n] = _config_object(target, out[n], n)
            continue
        if p.default is inspect.Parameter.empty:
            value = getattr(module, n, inspect.Parameter.empty)
            if isinstance(value, _SIMPLE):
                out[n] = value
                notes.append(f"{n}={value!r} taken from the module's own {n} (a required argument not given)")
            else:
                raise AdapterError(f"cannot construct {cls.__name__}: argument {n!r} is required; its signature is "
                                   f"{signature_text(cls)}. Give it with --kwargs '{{\"{n}\": ...}}'")
    if any(p.kind is p.POSITIONAL_ONLY and p.default is inspect.Parameter.empty for p in params.values()):
        raise AdapterError(f"cannot construct {cls.__name__}: it has positional-only arguments; its signature is "
                           f"{signature_text(cls)}")
    return out, notes


def construct(target: Any, kwargs: Mapping[str, Any], module: Any, search_path: Sequence[str] = (),
              info: Mapping[str, Any] | None = None) -> tuple[nn.Module, list[str]]:
    """Build the user's module: call the class with checked arguments, or copy a module-level instance."""
    if isinstance(target, nn.Module):
        if kwargs:
            raise AdapterError(f"{type(target).__name__} is a ready-made instance in the file; it takes no --kwargs")
        return copy.deepcopy(target), []
    call_kwargs, notes = resolve_kwargs(target, kwargs, module)
    try:
        with isolated_imports(search_path):
            net = target(**call_kwargs)
    except AdapterError:
        raise
    except TypeError as exc:
        raise AdapterError(f"cannot construct {target.__name__}(**{json.dumps(dict(kwargs))}): {exc}; its signature "
                           f"is {signature_text(target)}") from exc
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        if info and info.get("mode") == "script" and info.get("file"):
            path = Path(info["file"])
            raise _script_failure(path, target.__name__, info["script_work"], exc, _parse(path)) from exc
        raise AdapterError(f"{target.__name__}(...) failed: {_exc_line(exc)}") from exc
    if not isinstance(net, nn.Module):
        raise AdapterError(f"{target.__name__}(...) did not return a torch.nn.Module")
    return net, notes
