"""seqtag: fine-tune BERT token classifiers for imbalanced NER and extractive QA."""

__version__ = "0.1.0"
