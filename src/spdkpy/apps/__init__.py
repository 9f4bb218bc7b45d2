"""The ``spdkpy`` command and its applications: ``tgt``, ``poll_groups`` and the ``perf`` tools.

Layout: ``cli`` is the entry point (sub-command dispatch and the one-line error rule), each other
module one application built only on the public API of the layers below.
"""

# The applications are modules (``spdkpy.apps.cli`` and so on); the package re-exports nothing.
__all__: list[str] = []
