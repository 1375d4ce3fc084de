"""ipywidgets panels for notebooks; thin views over the same library calls the CLI uses."""

from .base import Panel
from .explore import TokenExplorer

__all__ = ["Panel", "TokenExplorer"]
