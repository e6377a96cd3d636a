"""IPython magics for rayparallel (``%px`` and friends), installed as ``rayparallel.magics``."""
