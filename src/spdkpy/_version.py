"""The package version, and the SPDK version string spdkpy reports for compatibility."""

from typing import Final

__version__: Final = "0.1.0"
SPDK_VERSION_STRING: Final = "SPDK v26.09-pre spdkpy " + __version__
