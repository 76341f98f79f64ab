"""collapse-watch: watch deployed language models for loss of output diversity (model collapse)."""

__version__ = "0.1.0"
