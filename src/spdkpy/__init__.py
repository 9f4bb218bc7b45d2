"""spdkpy: SPDK's application framework (reactors, lightweight threads, events, pollers) in Python.

Layout, lowest layer first; each sub-package imports only the layers below it:

* ``env``: cores and CPU sets, pinned OS threads, mempools, rings, clocks, wakers;
* ``thread``: lightweight threads, messages, pollers, io_devices and io_channels;
* ``event``: one reactor per core, events, thread placement;
* ``app``: options, startup/shutdown, signals, subsystems, JSON config;
* ``apps``: the ``spdkpy`` command and its applications.

``errors`` (the exception hierarchy) and ``testing`` (deterministic harnesses) stand beside them.
"""

from spdkpy._version import __version__ as __version__

__all__ = ["__version__"]
