"""llmcore: learn how a large language model works by running one.

data -> tokens -> GPT -> pre-training -> parameter file -> inference -> text,
then interpretability -> features -> steering, and the arithmetic of scale.

Importing llmcore is cheap: torch and friends load only when a module that needs
them is imported (a classroom runs the first cell forty times at once).
"""

import os

from llmcore.errors import UserError

__version__ = "0.1.0"
__all__ = ["SMOKE_ENV", "UserError", "__version__", "smoke"]

SMOKE_ENV = "LLMCORE_SMOKE"


def smoke() -> bool:
    """True when LLMCORE_SMOKE is 1/true/yes/on: the notebook tests run heavy cells small, without images."""
    return os.environ.get(SMOKE_ENV, "").strip().lower() in ("1", "true", "yes", "on")
