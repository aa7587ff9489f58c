"""gannotate: grow face-alignment training sets with a landmark-guided generator.

Data flows one way: ``io`` → ``shape_model`` → ``plan`` → ``render`` → ``write``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
