"""llmcore: learn how a large language model works by running one.

data -> tokens -> GPT -> pre-training -> parameter file -> inference -> text,
then interpretability -> features -> steering, and the arithmetic of scale.

Importing llmcore is cheap: torch and friends load only when a module that needs
them is imported (a classroom runs the first cell forty times at once).
"""

from llmcore.errors import UserError

__version__ = "0.1.0"
__all__ = ["UserError", "__version__"]
