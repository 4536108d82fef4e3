"""Short alias of ``raise_jupyter``, so that ``from raise_ import FeatureStore`` works."""

from raise_jupyter import *  # noqa: F403
from raise_jupyter import __all__, __version__  # noqa: F401
