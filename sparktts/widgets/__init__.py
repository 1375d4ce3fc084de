"""ipywidgets panels for notebooks; thin views over the same library calls the CLI uses."""

from .base import Panel
from .clone import ClonePanel
from .create import CreatePanel
from .evaluate import EvaluatePanel
from .explore import TokenExplorer

__all__ = ["ClonePanel", "CreatePanel", "EvaluatePanel", "Panel", "TokenExplorer"]
