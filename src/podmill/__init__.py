"""podmill: podcast and audio intelligence, self-hosted.

Importing this package loads no ML library; model backends import lazily.
"""

__version__ = "0.1.0"
