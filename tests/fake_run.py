"""Build a finished run directory (docs/ARCHITECTURE.md, "The run directory") in a temporary folder.

The model is a tiny random BERT (hidden 32, 2 layers) over a 40-word WordPiece vocabulary, so a whole run
directory is written in well under a second and weighs about 100 kB. Used by the hub and card tests.

The records are written by the code training uses: ``run_info.json`` through :class:`seqtag.runs.RunInfo` and
:func:`seqtag.runs.write_run_info`, ``metrics.json`` through :class:`seqtag.runs.SplitScores` and
:func:`seqtag.runs.write_metrics` (fractions, QA included), ``seqtag_config.yaml`` through
:func:`seqtag.config.from_dict` and :func:`seqtag.config.dump_config`. So a reader that misreads a key fails here
as it would on a real run; tests/publish/test_card.py also renders the card of a real tiny training run.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

from seqtag import runs
from seqtag.config import Config, dump_config, from_dict, to_dict
from seqtag.runs import SEQEVAL_MODE, LossRecord, RunInfo, SplitScores, TypeScores, WindowCounts

NER_LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
VOCAB = (
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "john", "mary", "smith", "lives", "lived", "works", "in", "at", "berlin", "paris", "new", "york",
    "the", "city", "of", "is", "a", "who", "where", "does", "did", "live", "work", "?", ".", ",",
    "##s", "##ed", "##ing", "anna", "london", "and", "to", "from", "visited",
)
SENTENCE = "John Smith lives in New York and visited Berlin."

# metrics.json of the fake runs, as training writes it: fractions in [0, 1], QA included
NER_METRICS = {
    "dev": SplitScores(
        precision=0.9123456789012345, recall=0.8876543210987654, f1=0.8998302047781569,
        f1_strict=0.8951219512195122, precision_strict=0.9087, recall_strict=0.8818, accuracy=0.9812345,
        per_type={"LOC": TypeScores(0.9333333333333333, 0.9032258064516129, 0.9180327868852459, 31),
                  "PER": TypeScores(0.8888888888888888, 0.8695652173913043, 0.8791208791208791, 23)},
    ),
    "test": SplitScores(
        precision=0.8571428571428571, recall=0.8275862068965517, f1=0.8421052631578947,
        f1_strict=0.8392857142857143, precision_strict=0.8545, recall_strict=0.8245, accuracy=0.9723,
        per_type={"LOC": TypeScores(0.875, 0.84, 0.8571428571428572, 25),
                  "PER": TypeScores(0.8333333333333334, 0.8125, 0.8227848101265823, 32)},
    ),
}
QA_METRICS = {"dev": SplitScores(exact_match=0.6125, f1=0.7248031496062992)}


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


def config(task: str = "ner", license: str | None = "apache-2.0") -> Config:
    """A plausible resolved config: bert-base-uncased on a Hub dataset (CoNLL-2003 for NER, SQuAD for QA)."""
    if task == "qa":
        data = {"format": "hub", "hub_dataset": "rajpurkar/squad", "train": "train", "dev": "validation",
                "max_length": 128, "doc_stride": 64}
        loss = {"name": "cross_entropy"}
    else:
        data = {"format": "hub", "hub_dataset": "eriktks/conll2003", "train": "train", "dev": "validation",
                "test": "test", "scheme": "IOB2", "max_length": 128, "stride": 32}
        loss = {"name": "focal", "gamma": 2.0}
    return from_dict({
        "task": task, "model": {"name_or_path": "bert-base-uncased"}, "data": data, "loss": loss,
        "train": {"output_dir": "runs/conll-focal", "epochs": 3, "batch_size": 16, "grad_accum": 2,
                  "learning_rate": 5e-5, "mixed_precision": "bf16", "seed": 13},
        "hub": {"license": license},
    })


def run_info(cfg: Config, status: str = "finished") -> RunInfo:
    """``run_info.json`` as :func:`seqtag.training.loop.write_info` and the tasks fill it in for ``cfg``."""
    ner = cfg.task == "ner"
    if ner:
        windows = {"train": WindowCounts(14041, 3, 14045), "dev": WindowCounts(3250, 1, 3251),
                   "test": WindowCounts(3453, 0, 3453)}
        task_info = {"labels": list(NER_LABELS), "tag_scheme": "IOB2", "source_scheme": "IOB2",
                     "seqeval_mode": SEQEVAL_MODE, "train_examples": 14041, "windows": windows}
    else:
        windows = {"train": WindowCounts(87599, 2164, 89807), "dev": WindowCounts(10570, 283, 10867)}
        task_info = {"head": "pointer", "train_examples": 87599, "windows": windows, "max_length": 128,
                     "doc_stride": 64, "max_answer_length": 30}
    return RunInfo(
        status=status, task=cfg.task, seqtag_version="0.1.0", torch_version="2.13.0", hardware="1x NVIDIA H200",
        epochs=3, configured_epochs=3, global_steps=1317, best_epoch=2, best_dev_f1=0.8998302047781569,
        wall_time_s=1834.5, total_batch_size=32, processes=1, mixed_precision=cfg.train.mixed_precision,
        loss=LossRecord(cfg.loss.name, dict(cfg.loss.params)), base_model=cfg.model.name_or_path,
        learning_rate=cfg.train.learning_rate, seed=cfg.train.seed,
        datasets=[v for v in (cfg.data.hub_dataset, cfg.data.train) if v], config=to_dict(cfg), **task_info,
    )


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
    cfg = config(task, license)
    (run / runs.CONFIG_FILE).write_text(dump_config(cfg), encoding="utf-8")
    runs.write_metrics(run / runs.METRICS_FILE, QA_METRICS if task == "qa" else NER_METRICS)
    runs.write_run_info(run, run_info(cfg, status))
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
