"""The house's imports run one way: each module imports only its own layer or below,
faces never import one another, and nothing imports in a circle.

The graph is read from the source (every ``import``, also inside functions and under
``TYPE_CHECKING``: a type-only import back up is still a dependency to understand), so
the test needs nothing importable and fails on the first new arrow that runs back up.
See docs/architecture.md for what each layer holds.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
PACKAGES: Final = ("monitor", "device_client", "broker")

PURE, ADAPTERS, SERVICE, FACES, ENTRY = range(5)
LAYER_NAMES: Final = ("pure", "adapters", "service", "faces", "entry")

# Most specific prefix wins. Pure: no I/O of its own, time passed in. Adapters: the
# store, the MQTT link, the SDK's connection, operations. Service: wiring and loops.
# Faces: what people and programs use (web, CLI, alerts' commands). Entry: processes.
LAYERS: Final[dict[str, int]] = {
    "device_client": PURE,
    "device_client.link": ADAPTERS,
    "device_client.client": ADAPTERS,
    "device_client.simulate": ADAPTERS,
    "device_client.degrade_driver": ADAPTERS,
    "device_client.cli": FACES,
    "broker": ADAPTERS,
    "broker.cli": FACES,
    "monitor": ADAPTERS,
    "monitor.errors": PURE,
    "monitor.timefmt": PURE,
    "monitor.status_refresh": PURE,
    "monitor.topic_payloads": PURE,
    "monitor.transition_log": PURE,
    "monitor.liveness": PURE,
    "monitor.risk": PURE,
    "monitor.sources": PURE,
    "monitor.sources.ingest": ADAPTERS,
    "monitor.sources.primary_host": ADAPTERS,
    "monitor.alerts": PURE,
    "monitor.alerts.models": ADAPTERS,
    "monitor.alerts.repository": ADAPTERS,
    "monitor.alerts.api": ADAPTERS,
    "monitor.alerts.outbox": ADAPTERS,
    "monitor.alerts.notifier": ADAPTERS,
    "monitor.alerts.actions": ADAPTERS,
    "monitor.alerts.shell": SERVICE,
    "monitor.alerts.cli": FACES,
    "monitor.service": SERVICE,
    "monitor.parts": SERVICE,
    "monitor.metrics": SERVICE,
    "monitor.metrics_risk": SERVICE,
    "monitor.metrics_cluster": SERVICE,
    "monitor.web": FACES,
    "monitor.cli_common": FACES,
    "monitor.cli_table": FACES,
    "monitor.cli_cluster": FACES,
    "monitor.cli_db": FACES,
    "monitor.cli_manage": FACES,
    "monitor.cli_sources": FACES,
    "monitor.cli_status": FACES,
    "monitor.cli_token": FACES,
    "monitor.demo_token": FACES,
    "monitor.cli": ENTRY,
    "monitor.cli_monitor": ENTRY,
    "monitor.demo": ENTRY,
    "monitor.process": ENTRY,
}

# Faces talk to what is below them, never to each other.
FACE_GROUPS: Final = {
    "web": ("monitor.web",),
    "cli": ("monitor.cli_", "monitor.alerts.cli", "device_client.cli", "broker.cli"),
}


# What a face may use of the store: its errors, its reads (``reports``), tokens, and for
# the database commands the connection and migrations. Writes go through monitor.ops.
FACE_STORE_MODULES: Final = frozenset(
    {
        "monitor.store.errors",
        "monitor.store.reports",
        "monitor.store.tokens",
        "monitor.store.database",
        "monitor.store.migrate",
    }
)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES: Final = _modules()


def _owner(name: str) -> str | None:
    """The project module a dotted name lives in (``a.b.C`` -> ``a.b``), if any."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> Iterator[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            owner = _owner(name)
            if owner is not None and owner != module:
                yield owner
                break


GRAPH: Final = {m: sorted(set(_imports(m, p))) for m, p in MODULES.items()}


def layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    if MODULES[module].name == "__init__.py":
        # A package's __init__ only hands names on (the SDK's public surface): it stands
        # as high as the highest module it re-exports.
        return max([LAYERS[best], *(layer(t) for t in GRAPH[module])])
    return LAYERS[best]


def _face(module: str) -> str | None:
    for group, prefixes in FACE_GROUPS.items():
        if any(module == p or module.startswith(p) for p in prefixes):
            return group
    return None


def test_every_module_has_a_layer() -> None:
    # A new top-level package would fall outside the map and escape the rules.
    assert all(any(m == p or m.startswith(p + ".") for p in LAYERS) for m in MODULES)


def test_no_import_runs_back_up() -> None:
    upward = [
        f"{m} ({LAYER_NAMES[layer(m)]}) imports {t} ({LAYER_NAMES[layer(t)]})"
        for m, targets in GRAPH.items()
        for t in targets
        if layer(t) > layer(m)
    ]
    assert upward == []


def test_faces_do_not_import_one_another() -> None:
    crossing = [
        f"{m} -> {t}"
        for m, targets in GRAPH.items()
        for t in targets
        if _face(m) and _face(t) and _face(m) != _face(t)
    ]
    assert crossing == []


def test_faces_use_the_store_through_reads_and_operations() -> None:
    internal = [
        f"{m} -> {t}"
        for m, targets in GRAPH.items()
        if _face(m)
        for t in targets
        if t.startswith("monitor.store.") and t not in FACE_STORE_MODULES
    ]
    assert internal == []


def _cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The graph's loops: its strongly connected components of more than one node
    (Tarjan's, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_no_import_cycle() -> None:
    assert _cycles(GRAPH) == []


# The top of the application package holds the entry modules, the service and small pure
# modules side by side: there each file stands for itself. Everywhere else a folder is
# one unit (``monitor.store``, ``monitor.cluster``, ``device_client``, ``broker``).
OPEN_FOLDERS: Final = frozenset({"monitor"})


def _folder(module: str) -> str:
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    return module if package in OPEN_FOLDERS or not package else package


def _folder_arrows() -> dict[str, dict[str, list[str]]]:
    """Folder -> folder it imports -> the module imports that make the arrow."""
    arrows: dict[str, dict[str, list[str]]] = {}
    for module, targets in GRAPH.items():
        for target in targets:
            here, there = _folder(module), _folder(target)
            if here != there:
                arrows.setdefault(here, {}).setdefault(there, []).append(f"{module} -> {target}")
    return arrows


def test_no_folder_imports_another_in_a_circle() -> None:
    # Modules can avoid a loop while their folders import each other both ways
    # (store.writer -> cluster.fencing while cluster.* -> store.*): the two folders can
    # then be understood, tested and changed only together.
    arrows = _folder_arrows()
    loops = [
        {
            folder: sorted(
                m for there in loop if there in arrows[folder] for m in arrows[folder][there]
            )
            for folder in loop
        }
        for loop in _cycles({folder: sorted(out) for folder, out in arrows.items()})
    ]
    assert loops == []


def test_commands_other_than_the_monitor_start_without_the_mqtt_and_web_stacks() -> None:
    # `clawbeat status`, `token create`, ... parse their arguments through monitor.cli:
    # importing it must not pay for aiomqtt, FastAPI or scikit-learn.
    probe = (
        "import sys, monitor.cli; "
        "print(sorted(m for m in ('aiomqtt', 'fastapi', 'uvicorn', 'sklearn', "
        "'monitor.service') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.strip()
    assert loaded == "[]"


def test_the_graph_is_read() -> None:
    # Guards the reader itself: known arrows must be found, or every rule passes vacuously.
    assert "monitor.liveness.engine" in GRAPH["monitor.service"]
    assert "device_client.protocol" in GRAPH["monitor.liveness.engine"]
    assert "monitor.service" in GRAPH["monitor.process"]
    assert "monitor.store" in _folder_arrows()["monitor.cluster"]
