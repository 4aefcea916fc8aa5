"""pyroute2 without its package ``__init__`` until someone asks for a package-level name.

Why: ``import pyroute2`` (and so ``from pyroute2.iproute import IPRoute``, whose parent
package runs first) executes pyroute2's ``__init__.py``, which imports every netlink
family the library knows: NDB with sqlite3, IPDB, ethtool, nl80211, WireGuard, plan9,
devlink, ipset, IPVS... The agent uses rtnetlink (``pyroute2.iproute``) only (it decodes
its conntrack dumps itself, agent/net/conntrack.py). Measured in a fresh interpreter with
asyncio and ssl already imported (docs/footprint.md): the full package costs 12.6 MB of
RSS on PyPI's 0.9.7 and 15.6 MB on Debian 12's 0.7.2; the modules the agent imports cost
6.6 and 5.3 MB. That difference is a quarter of the serving daemon's memory.

How: ``defer_package_init()`` puts a module object for ``pyroute2`` in ``sys.modules``
with the real package's ``__path__`` and spec, so its submodules import as usual. The
first access to a name the package does not have yet (``from pyroute2 import NDB``,
``pyroute2.IPRoute``, ``from pyroute2 import *``) imports the submodule of that name if
there is one, and otherwise runs the real ``__init__.py`` into the same module object,
once: every other user of pyroute2 in the process sees the library unchanged, only later.
The agent itself imports submodules only, from its main thread at start-up and from
worker threads (the router's addresses), so it never runs the ``__init__``; a lock keeps that one-time
run single if another user does.

Submodule paths the agent relies on (the same in pyroute2 0.7.2, 0.7.9 and 0.9.x):
``pyroute2.iproute`` (``IPRoute``; ``AsyncIPRoute`` from 0.9), ``pyroute2.netlink.rtnl``,
``pyroute2.netlink.exceptions``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

PACKAGE = "pyroute2"

_INIT_LOCK = threading.RLock()


class _DeferredPackage(types.ModuleType):
    """The ``pyroute2`` package whose ``__init__`` runs on the first missing attribute."""

    def __getattr__(self, name: str) -> Any:
        if (type(self) is _DeferredPackage and not name.startswith("__")
                and importlib.util.find_spec(f"{PACKAGE}.{name}") is not None):
            return importlib.import_module(f"{PACKAGE}.{name}")  # a submodule: no __init__ needed
        with _INIT_LOCK:
            if type(self) is _DeferredPackage:  # another thread may have run it meanwhile
                self._run_init()
        try:
            return self.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}") from None

    def _run_init(self) -> None:
        spec = self.__spec__
        code = spec.loader.get_code(PACKAGE)  # type: ignore[union-attr]
        self.__class__ = types.ModuleType  # type: ignore[assignment]  # __init__'s imports see a plain package
        try:
            exec(code, self.__dict__)  # noqa: S102 - the installed package's own __init__.py
        except BaseException:
            self.__class__ = _DeferredPackage  # as a failed import would: the next access tries again
            raise


def defer_package_init() -> bool:
    """Install the deferred ``pyroute2`` package unless pyroute2 is imported already (or
    absent); True if installed."""
    with _INIT_LOCK:
        if PACKAGE in sys.modules:
            return False
        spec = importlib.util.find_spec(PACKAGE)
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            return False
        module = _DeferredPackage(PACKAGE)
        module.__spec__ = spec
        module.__loader__ = spec.loader
        module.__file__ = spec.origin
        module.__path__ = list(spec.submodule_search_locations)
        module.__package__ = PACKAGE
        sys.modules[PACKAGE] = module
        return True


def is_deferred() -> bool:
    """True while pyroute2's ``__init__`` has not run (the serving daemon's normal state)."""
    return type(sys.modules.get(PACKAGE)) is _DeferredPackage
