"""seem-annotator: label image datasets with SEEM."""

__version__ = "0.1.0"
