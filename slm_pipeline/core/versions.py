"""Code versions derived from the code itself, never maintained by hand.

`code_version(fn)` hashes the source of `fn` and of every module under `package` (default `slm_pipeline.core`)
that `fn` uses, directly or through their imports (module-level or inside functions), plus the data files
shipped inside those packages (e.g. a lexicon YAML). Each module counts by its syntax tree without
docstrings, so editing a comment, a docstring or the formatting keeps the version; changing what the code does
changes it. Settings are not code here: they are versioned by their values (config.py is outside `package`).

An asset's own work lives in core/; the asset function itself (decorators aside) counts too. This module never
imports dagster.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import sys
import textwrap
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

__all__ = ["code_version", "code_modules"]

DEFAULT_PACKAGE = "slm_pipeline.core"


def code_version(fn: Callable, package: str = DEFAULT_PACKAGE) -> str:
    """12 hex digits: `fn`'s normalized source + every module of `package` it reaches + their data files."""
    h = hashlib.sha256()
    for helper in _local_code(fn):
        h.update(_normalized(_source_tree(helper)).encode())
    for name, path in code_modules(fn, package):
        h.update(f"\0{name}\0{_file_info(path)[1]}".encode())
    return h.hexdigest()[:12]


def code_modules(fn: Callable, package: str = DEFAULT_PACKAGE) -> list[tuple[str, Path]]:
    """(module name or data-file name, path) of everything under `package` that `fn` depends on, sorted."""
    roots: set[str] = set()
    for helper in _local_code(fn):
        tree = _source_tree(helper)
        roots.update(_imports(tree, helper.__module__.rpartition(".")[0]))  # imports inside it, relative to its package
        for obj in _global_refs(helper, tree):  # imported functions, classes and modules
            roots.add(obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", None) or "")
    seen: dict[str, Path] = {}
    todo = [r for r in roots if _within(r, package)]
    while todo:
        name = todo.pop()
        if name in seen or (path := _module_file(name)) is None:
            continue
        seen[name] = path
        own = name if path.name == "__init__.py" else name.rpartition(".")[0]
        todo += [m for m in _resolve(_file_info(path)[0], own) if _within(m, package) and m not in seen]
    files = dict(seen)
    for name, path in seen.items():
        if path.name == "__init__.py":  # data shipped inside the package (lexicons, templates)
            files.update({f"{name}/{p.relative_to(path.parent).as_posix()}": p for p in _data_files(path.parent)})
    return sorted(files.items())


def _global_refs(fn: Callable, tree: ast.AST) -> list:
    """The module-level objects `fn`'s code names."""
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    return [fn.__globals__[n] for n in sorted(names) if n in getattr(fn, "__globals__", {})]


def _local_code(fn: Callable) -> list:
    """`fn` and the functions and classes of its own module it uses, directly or through each other."""
    fn = inspect.unwrap(fn)
    found, todo = [fn], [fn]
    while todo:
        current = todo.pop()
        for obj in _global_refs(current, _source_tree(current)):
            if ((inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == fn.__module__
                    and obj not in found):
                found.append(obj)
                todo.append(obj)
    return found


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _module_file(name: str) -> Path | None:
    """The file of module `name`, found from its top-level package's folder (nothing is imported)."""
    top = sys.modules.get(name.split(".")[0])
    if top is None or not getattr(top, "__file__", None):
        return None
    folder = Path(top.__file__).parent.joinpath(*name.split(".")[1:])
    for candidate in (folder / "__init__.py", folder.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


ImportRef = tuple[int, str, tuple[str, ...]]  # (relative level, module, imported names)


def _import_refs(tree: ast.AST) -> list[ImportRef]:
    refs = []
    for node in ast.walk(tree):  # module level and inside functions (lazy imports) alike
        if isinstance(node, ast.Import):
            refs += [(0, a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            refs.append((node.level, node.module or "", tuple(a.name for a in node.names if a.name != "*")))
    return refs


def _resolve(refs: list[ImportRef], package: str) -> Iterator[str]:
    """Absolute module names; `from x import y` also yields x.y (y may be a module)."""
    for level, module, names in refs:
        if level:
            parts = package.split(".")
            parent = ".".join(parts[: len(parts) - level + 1])
            module = f"{parent}.{module}" if module else parent
        yield module
        yield from (f"{module}.{n}" for n in names)


def _imports(tree: ast.AST, package: str) -> list[str]:
    return list(_resolve(_import_refs(tree), package))


def _source_tree(obj) -> ast.AST:
    """Parsed source of a function or class, without its decorators (descriptions and tags, not behaviour)."""
    obj = inspect.unwrap(obj)
    tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
    for node in tree.body[:1]:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            node.decorator_list = []
    return tree


def _normalized(tree: ast.AST) -> str:
    """The tree without docstrings, as a string: comments and formatting never reach the AST."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def _file_info(path: Path) -> tuple[list[ImportRef], str]:
    st = path.stat()
    return _file_info_cached(str(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=1024)
def _file_info_cached(path: str, mtime_ns: int, size: int) -> tuple[list[ImportRef], str]:
    """(imports, digest) of one file, parsed once per (path, mtime, size) in a process."""
    p = Path(path)
    if p.suffix != ".py":
        return [], hashlib.sha256(p.read_bytes()).hexdigest()
    tree = ast.parse(p.read_text(encoding="utf-8"))
    refs = _import_refs(tree)
    return refs, hashlib.sha256(_normalized(tree).encode()).hexdigest()


def _data_files(folder: Path) -> list[Path]:
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).parts
        if (p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in rel
                and not any(part.startswith(".") for part in rel)):
            out.append(p)
    return out
