"""The old import path of the prompt format, kept so that existing code and notebooks keep working.

The code lives in :mod:`sparktts.format`: token strings and their parser in :mod:`sparktts.format.tokens`, prompt and
training-target builders in :mod:`sparktts.format.prompts`.
"""

from sparktts.format.prompts import *  # noqa: F403
from sparktts.format.prompts import __all__ as _prompts_all
from sparktts.format.tokens import *  # noqa: F403
from sparktts.format.tokens import __all__ as _tokens_all

__all__ = [*_tokens_all, *_prompts_all]
