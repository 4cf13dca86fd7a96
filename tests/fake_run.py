"""Build a finished run directory (docs/ARCHITECTURE.md, "The run directory") in a temporary folder.

The model is a tiny random BERT (hidden 32, 2 layers) over a 40-word WordPiece vocabulary, so a whole run
directory is written in well under a second and weighs about 100 kB. Used by the hub and card tests.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

NER_LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
VOCAB = (
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "john", "mary", "smith", "lives", "lived", "works", "in", "at", "berlin", "paris", "new", "york",
    "the", "city", "of", "is", "a", "who", "where", "does", "did", "live", "work", "?", ".", ",",
    "##s", "##ed", "##ing", "anna", "london", "and", "to", "from", "visited",
)
SENTENCE = "John Smith lives in New York and visited Berlin."

NER_METRICS = {
    "dev": {
        "precision": 0.9123456789012345, "recall": 0.8876543210987654, "f1": 0.8998302047781569,
        "f1_strict": 0.8951219512195122, "accuracy": 0.9812345,
        "per_type": {
            "LOC": {"precision": 0.9333333333333333, "recall": 0.9032258064516129, "f1": 0.9180327868852459,
                    "support": 31},
            "PER": {"precision": 0.8888888888888888, "recall": 0.8695652173913043, "f1": 0.8791208791208791,
                    "support": 23},
        },
    },
    "test": {
        "precision": 0.8571428571428571, "recall": 0.8275862068965517, "f1": 0.8421052631578947,
        "f1_strict": 0.8392857142857143, "accuracy": 0.9723,
        "per_type": {
            "LOC": {"precision": 0.875, "recall": 0.84, "f1": 0.8571428571428572, "support": 25},
            "PER": {"precision": 0.8333333333333334, "recall": 0.8125, "f1": 0.8227848101265823, "support": 32},
        },
    },
}
QA_METRICS = {
    "dev": {"exact_match": 61.25, "f1": 72.48031496062992},
    "test": {"exact_match": 58.333333333333336, "f1": 70.12345678901234},
}


def write_vocab(path: Path) -> Path:
    """Write :data:`VOCAB` one token a line (BERT's vocab.txt format) and return the path."""
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return path


def tiny_tokenizer(tmp_dir: Path):
    """A lower-casing WordPiece ``BertTokenizerFast`` over :data:`VOCAB` (written to ``tmp_dir/vocab.txt``).

    transformers 5 takes the vocabulary file as ``vocab=`` (``vocab_file=`` is silently ignored there).
    """
    from transformers import BertTokenizerFast

    vocab = write_vocab(Path(tmp_dir) / "vocab.txt")
    return BertTokenizerFast(vocab=str(vocab))


def tiny_model(task: str = "ner", seed: int = 0):
    """A random 2-layer BERT: token classification over :data:`NER_LABELS`, or a QA (start/end) head."""
    import torch
    from transformers import BertConfig, BertForQuestionAnswering, BertForTokenClassification

    config = BertConfig(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    if task == "qa":
        return BertForQuestionAnswering(config).eval()
    config.id2label = dict(enumerate(NER_LABELS))
    config.label2id = {label: i for i, label in enumerate(NER_LABELS)}
    return BertForTokenClassification(config).eval()


def tiny_png() -> bytes:
    """A valid 4x4 grey PNG (signature, IHDR, IDAT, IEND), standing in for training_curves.png."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes([40 * y] * 4) for y in range(4))  # filter byte 0, then 4 grey pixels
    ihdr = struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def config_yaml(task: str = "ner", license: str | None = "apache-2.0") -> str:
    """A plausible resolved ``seqtag_config.yaml`` (every section, defaults filled in)."""
    if task == "qa":
        data = (
            "data:\n  train: ../shared/data/squad/train-v1.1.json\n  dev: ../shared/data/squad/dev-v1.1.json\n"
            "  test: null\n  format: squad\n  hub_dataset: null\n  max_length: 128\n  doc_stride: 64\n"
        )
        loss = "loss:\n  name: cross_entropy\n  params: {}\n"
    else:
        data = (
            "data:\n  train: ../shared/data/conll2003/train.txt\n  dev: ../shared/data/conll2003/valid.txt\n"
            "  test: ../shared/data/conll2003/test.txt\n  format: conll\n  hub_dataset: null\n  scheme: auto\n"
            "  train_scheme: IOB2\n  max_length: 128\n  stride: 32\n"
        )
        loss = "loss:\n  name: focal\n  params:\n    gamma: 2.0\n"
    hub = "hub:\n  repo_id: null\n  private: false\n" + (f"  license: {license}\n" if license else "  license: null\n")
    return (
        f"task: {task}\n"
        "model:\n  name_or_path: bert-base-cased\n  revision: null\n  trust_remote_code: false\n"
        f"{data}{loss}"
        "train:\n  output_dir: runs/conll-focal\n  epochs: 3\n  max_steps: null\n  batch_size: 16\n"
        "  grad_accum: 2\n  learning_rate: 5.0e-05\n  weight_decay: 0.01\n  warmup_ratio: 0.1\n"
        "  mixed_precision: bf16\n  seed: 13\n"
        f"{hub}"
    )


def run_info(task: str = "ner", status: str = "finished") -> dict:
    """``run_info.json`` with every key docs/ARCHITECTURE.md lists."""
    ner = task == "ner"
    return {
        "status": status,
        "task": task,
        "seqtag_version": "0.1.0",
        "epochs": 3,
        "global_steps": 1317,
        "best_epoch": 2,
        "total_batch_size": 32,
        "train_examples": 14041 if ner else 8000,
        "wall_time_s": 1834.5,
        "hardware": "1x NVIDIA H200 (bf16)",
        "mixed_precision": "bf16",
        "loss": {"name": "focal", "params": {"gamma": 2.0}} if ner else {"name": "cross_entropy", "params": {}},
        "tag_scheme": "IOB2" if ner else None,
        "seqeval_mode": "default" if ner else None,
        "base_model": "bert-base-cased",
        "datasets": ["conll2003"] if ner else ["squad"],
        "windowed_sentences": {"train": 3, "dev": 1, "test": 0} if ner else {},
    }


def split_front_matter(card: str) -> tuple[dict, str]:
    """Split a model card into its YAML front matter (parsed with ``yaml.safe_load``) and the body."""
    import yaml

    assert card.startswith("---\n"), card[:40]
    end = card.index("\n---\n", 4)
    return yaml.safe_load(card[4:end]), card[end + 5:]


def make_run(root: Path, *, task: str = "ner", status: str = "finished", name: str = "run",
             license: str | None = "apache-2.0", junk: bool = True) -> Path:
    """Write a run directory ``root/name`` and return its path.

    ``junk=True`` adds what must never be uploaded: ``checkpoints/last/`` (optimizer state, a weights copy),
    a stray top-level ``extra_state.pt``, a ``pytorch_model.bin`` and a stale ``README.md``.
    """
    run = Path(root) / name
    run.mkdir(parents=True)
    model = tiny_model(task)
    model.save_pretrained(run, safe_serialization=True)
    tiny_tokenizer(Path(root)).save_pretrained(run)
    (run / "seqtag_config.yaml").write_text(config_yaml(task, license), encoding="utf-8")
    metrics = QA_METRICS if task == "qa" else NER_METRICS
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    (run / "run_info.json").write_text(json.dumps(run_info(task, status), indent=2), encoding="utf-8")
    history = [
        {"type": "step", "epoch": 1, "step": 10, "loss": 1.25, "lr": 4.5e-05},
        {"type": "step", "epoch": 1, "step": 20, "loss": 0.75, "lr": 4.0e-05},
        {"type": "epoch", "epoch": 1, "step": 20, "dev_f1": 0.5},
    ]
    (run / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history), encoding="utf-8")
    (run / "training_curves.png").write_bytes(tiny_png())
    if junk:
        import torch

        last = run / "checkpoints" / "last"
        last.mkdir(parents=True)
        torch.save({"state": {}, "param_groups": [{"lr": 5e-5}]}, last / "optimizer.pt")
        (last / "model.safetensors").write_bytes((run / "model.safetensors").read_bytes())
        (last / "trainer_state.json").write_text('{"epoch": 2, "step": 878}', encoding="utf-8")
        torch.save({"rng": 1}, run / "extra_state.pt")
        (run / "pytorch_model.bin").write_bytes(b"pickled weights must never be uploaded")
        (run / "README.md").write_text("stale card from an earlier push\n", encoding="utf-8")
    return run
