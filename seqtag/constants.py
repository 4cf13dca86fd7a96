"""Constants shared across seqtag. Defined once, imported everywhere."""

IGNORE_INDEX = -100
"""Target value ignored by every loss and metric (the PyTorch / transformers convention)."""
