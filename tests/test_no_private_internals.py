"""No code in playground/ leans on another project's private names (issue 24).

A name that starts with one underscore (not a dunder) is private to the
project that defines it: Django, httpx, httpcore, asgiref, django-tasks-db,
the standard library... Their next release may change or remove it without a
word. This test walks playground/ with `ast` (migrations excluded: they are
generated) and fails on:

- an import of a private name or module of another project:
  `from httpx import _client`, `import httpx._client`,
  `from httpcore._backends.sync import SyncStream`;
- an attribute access `x._name` that is not ours. Ours: `x` is one of our
  modules (`jobs._step`), or `_name` is introduced by one of our classes (a
  method or class attribute defined in its body, or `self._name = ...` in
  its methods) and is not already a name of a class from another project in
  that class's bases (that would be reaching into, or overriding, theirs);
- a method or class attribute `_name` defined in our subclass of another
  project's class that has `_name` itself (overriding a private hook, as a
  custom session store overriding `_get_session_from_db` did).

Documented names that merely start with an underscore are allowed
(DOCUMENTED), and each remaining exception is in ALLOWED, with why."""

from __future__ import annotations

import ast
import importlib
from functools import cache
from pathlib import Path

import playground

ROOT = Path(playground.__file__).parent

# Underscore names that their project documents as public API.
DOCUMENTED = {
    "_meta": "Django's Model._meta API (docs: ref/models/meta)",
    "_state": "Django's Model._state, documented with its adding and db (docs: ref/models/instances)",
}

# "<path relative to playground/>:<fragment of the line's text>": why.
ALLOWED = {
    "lib/net/guard.py:client._transport._pool._network_backend": (
        "every connection of a guarded client is opened by GuardedBackend (the address is checked after DNS, "
        "issue 23); httpx has no public way to give its transport an httpcore network backend"),
}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _python_files():
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.relative_to(ROOT).parts:
            continue
        yield path


def _module_name(path: Path) -> str:
    parts = ("playground",) + path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(path: Path) -> str:
    return ".".join(("playground",) + path.relative_to(ROOT).parent.parts)


def _ours(module: str) -> bool:
    return module == "playground" or module.startswith("playground.")


class _Module:
    """One of our files: its tree, what its names are bound to, its classes."""

    def __init__(self, path: Path, source: str | None = None):
        self.path = path
        self.name = _module_name(path)
        self.source = path.read_text() if source is None else source
        self.lines = self.source.splitlines()
        self.tree = ast.parse(self.source, filename=str(path))
        self.bindings: dict[str, str] = {}  # local name -> dotted path it was imported as
        self.classes: dict[str, ast.ClassDef] = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.bindings[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.bindings[top] = top
            elif isinstance(node, ast.ImportFrom):
                module = self.absolute(node)
                for alias in node.names:
                    self.bindings[alias.asname or alias.name] = f"{module}.{alias.name}"
        for node in self.tree.body:
            if isinstance(node, ast.ClassDef):
                self.classes[node.name] = node

    def absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = _package(self.path)
        if node.level > 1:
            base = base.rsplit(".", node.level - 1)[0]
        return f"{base}.{node.module}" if node.module else base

    def dotted(self, node: ast.AST) -> str | None:
        """The import path an expression like `db.SessionStore` names."""
        if isinstance(node, ast.Name):
            if node.id in self.classes:
                return f"{self.name}.{node.id}"
            return self.bindings.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.dotted(node.value)
            return f"{base}.{node.attr}" if base else None
        return None


@cache
def _modules() -> dict[str, _Module]:
    return {m.name: m for m in map(_Module, _python_files())}


def _resolve(dotted: str):
    """Import the object a dotted path names (another project's class)."""
    module, _, attr = dotted.rpartition(".")
    while module:
        try:
            obj = importlib.import_module(module)
        except ImportError:
            module, _, more = module.rpartition(".")
            attr = f"{more}.{attr}"
            continue
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj
    raise ImportError(dotted)


def _introduced_in_body(node: ast.ClassDef) -> set[str]:
    """Private names a class body defines, and `self._x = ...` in its methods."""
    names = set()
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(item.name)
        elif isinstance(item, ast.Assign):
            names.update(t.id for t in item.targets if isinstance(t, ast.Name))
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            names.add(item.target.id)
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store) and isinstance(sub.value, ast.Name) \
                and sub.value.id in ("self", "cls"):
            names.add(sub.attr)
    return {n for n in names if _is_private(n)}


@cache
def _class_info(module: _Module, class_name: str) -> tuple[frozenset, frozenset]:
    """(private names our classes introduce, private names of other
    projects' classes among its bases) for one of our classes."""
    node = module.classes[class_name]
    ours, theirs = set(_introduced_in_body(node)), set()
    for base in node.bases:
        dotted = module.dotted(base)
        if dotted is None:
            continue
        owner, _, name = dotted.rpartition(".")
        if _ours(dotted) and owner in _modules() and name in _modules()[owner].classes:
            more_ours, more_theirs = _class_info(_modules()[owner], name)
            ours |= more_ours
            theirs |= more_theirs
        elif not _ours(dotted):
            cls = _resolve(dotted)
            for klass in getattr(cls, "__mro__", ()):
                theirs.update(n for n in vars(klass) if _is_private(n))
    return frozenset(ours), frozenset(theirs)


def _class_infos_of(module: _Module, node: ast.ClassDef):
    if node.name in module.classes and module.classes[node.name] is node:
        return _class_info(module, node.name)
    # A nested class: its own body only (bases resolved as for a top-level class).
    return frozenset(_introduced_in_body(node)), frozenset()


@cache
def _all_ours() -> frozenset:
    """Every private name one of our classes introduces (not one of another
    project's base classes' names)."""
    names = set()
    for module in _modules().values():
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ClassDef):
                ours, theirs = _class_infos_of(module, node)
                names |= ours - theirs
    return frozenset(names)


class _Finder(ast.NodeVisitor):
    def __init__(self, module: _Module):
        self.module = module
        self.classes: list[ast.ClassDef] = []
        self.found: list[tuple[int, str]] = []

    def flag(self, node, what):
        self.found.append((node.lineno, what))

    def visit_Import(self, node):
        for alias in node.names:
            if not _ours(alias.name) and any(_is_private(p) for p in alias.name.split(".")):
                self.flag(node, f"imports {alias.name}")

    def visit_ImportFrom(self, node):
        if node.level:
            return
        module = node.module or ""
        if _ours(module) or module == "__future__":
            return
        if any(_is_private(p) for p in module.split(".")):
            self.flag(node, f"imports from {module}")
        for alias in node.names:
            if _is_private(alias.name):
                self.flag(node, f"imports {module}.{alias.name}")

    def visit_ClassDef(self, node):
        ours, theirs = _class_infos_of(self.module, node)
        for item in node.body:
            names = []
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [item.name]
            elif isinstance(item, ast.Assign):
                names = [t.id for t in item.targets if isinstance(t, ast.Name)]
            for name in names:
                if _is_private(name) and name in theirs and name not in DOCUMENTED:
                    self.flag(item, f"{node.name} overrides {name} of another project's base class")
        self.classes.append(node)
        self.generic_visit(node)
        self.classes.pop()

    def visit_Attribute(self, node):
        self.generic_visit(node)
        name = node.attr
        if not _is_private(name) or name in DOCUMENTED:
            return
        base = node.value
        on_self = (isinstance(base, ast.Name) and base.id in ("self", "cls")) or (
            isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "super")
        if on_self and self.classes:
            ours, theirs = _class_infos_of(self.module, self.classes[-1])
            if name in ours and name not in theirs:
                return
            self.flag(node, f"{ast.unparse(node)}: not introduced by our class, or one of its base's own")
            return
        root = base
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name):
            bound = self.module.bindings.get(root.id)
            if bound is not None:
                if _ours(bound):
                    return  # one of our modules (or something of ours imported)
                self.flag(node, f"{ast.unparse(node)}: a private name of {bound}")
                return
        if name in _all_ours():
            return
        self.flag(node, f"{ast.unparse(node)}: a private name of another project")


def find_private_uses() -> list[str]:
    found = []
    for module in _modules().values():
        finder = _Finder(module)
        finder.visit(module.tree)
        rel = str(module.path.relative_to(ROOT))
        for line, what in sorted(set(finder.found)):
            text = module.lines[line - 1].strip()
            if any(key.split(":", 1)[0] == rel and key.split(":", 1)[1] in text for key in ALLOWED):
                continue
            found.append(f"{rel}:{line}: {what}    [{text}]")
    return found


def test_no_private_names_of_other_projects():
    assert find_private_uses() == []


def test_every_allowed_exception_is_still_there():
    """An exception whose line is gone leaves the allow-list."""
    stale = []
    for key in ALLOWED:
        rel, fragment = key.split(":", 1)
        path = ROOT / rel
        if not path.exists() or fragment not in path.read_text():
            stale.append(key)
    assert stale == []


def _check(source: str, rel: str = "lib/example.py") -> list[str]:
    module = _Module(ROOT / rel, source)
    finder = _Finder(module)
    finder.visit(module.tree)
    return [what for _, what in finder.found]


def test_the_check_finds_what_it_should():
    assert _check("from httpx import _client\n")
    assert _check("import httpx._client\n")
    assert _check("from httpcore._backends.sync import SyncStream\n")
    assert _check("import httpx\nx = httpx._client.UseClientDefault\n")
    assert _check("def f(qs):\n    return qs._iterable_class\n")
    assert _check("def f(obj, meta):\n    return obj._is_pk_set(meta)\n")
    # Ours, documented, or dunder: fine.
    assert not _check("from . import jobs\njobs._step()\n")
    assert not _check("def f(m):\n    return m._meta.label, m._state.adding, m.__class__\n")
    assert not _check("class A:\n    def __init__(self):\n        self._x = 1\n    def f(self):\n"
                      "        return self._x\n")
    # Reaching into, or overriding, a private name of another project's base class.
    assert _check("from django.contrib.sessions.backends import db\nclass S(db.SessionStore):\n"
                  "    def _get_session_from_db(self):\n        return super()._get_session_from_db()\n")
    assert _check("import httpx\nclass C(httpx.Client):\n    def send(self, request):\n"
                  "        return self._transport_for_url(request.url)\n")
