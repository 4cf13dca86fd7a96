"""The config's schema: one frozen dataclass per section, every default with a one-line comment
(``docs/config.md`` is generated from them), and the choices a key accepts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TASKS = ("ner", "qa")
MIXED_PRECISION = ("no", "bf16", "fp16", "auto")
DATA_FORMATS = ("auto", "conll", "jsonl", "hub", "squad")
SCHEMES_OR_AUTO = ("auto", "IOB1", "IOB2", "IOBES", "BILOU")
TRAIN_SCHEMES = ("IOB2", "IOBES", "BILOU")
QA_HEADS = ("pointer", "tagging")
MODEL_HEADS = ("linear", "crf", "span")
DECODINGS = ("argmax", "viterbi", "nested", "flat")  # argmax | viterbi: token heads; nested | flat: the span head


@dataclass(frozen=True)
class ModelConfig:
    name_or_path: str  # Hub id, local directory, or pkg:PACKAGE/sub/path for a model shipped inside a pip package
    revision: str | None = None  # Hub branch, tag or commit; pin it for reproducible runs
    trust_remote_code: bool = False  # run Python code from the model repository: only for repositories you trust
    allow_pickle: bool = False  # load pickle (.bin) weights: pickle can execute code, so safetensors only by default
    head: str = "linear"  # NER: linear (softmax per word) | crf (a linear-chain CRF over the words, trained by its exact NLL) | span (a score per word span and type: nested entities)
    max_span_length: int = 16  # model.head=span: the longest span scored, in words (longer gold spans are counted and skipped)


@dataclass(frozen=True)
class DataConfig:
    train: str  # file (CoNLL columns, JSONL, SQuAD JSON/zip), pkg:PACKAGE/path, or a split name when format=hub
    dev: str | None = None  # evaluated every epoch; the best checkpoint is chosen on it
    test: str | None = None  # evaluated once, with the best checkpoint, at the end
    format: str = "auto"  # auto (by extension) | conll | jsonl | hub | squad
    hub_dataset: str | None = None  # with format=hub: a Hub dataset name or a directory saved by datasets.save_to_disk
    hub_config: str | None = None  # with format=hub: the dataset configuration name, if it has several
    tokens_column: str = "tokens"  # with format=hub/jsonl: the column holding the words
    tags_column: str = "ner_tags"  # format=hub: the column holding the tags; jsonl: the tag key of records without "tags"
    token_column: int = 0  # CoNLL: column index of the word
    tag_column: int = -1  # CoNLL: column index of the tag (default: the last)
    scheme: str = "auto"  # tag scheme of the files: auto-detected from train, or IOB1 | IOB2 | IOBES | BILOU
    train_scheme: str = "IOB2"  # the scheme the model is trained and evaluated in (files are converted)
    on_invalid: str = "error"  # an invalid tag sequence (I-X after O in IOB2...): error, or repair it and count
    unseen_labels: str = "error"  # a dev/test entity type never seen in training: error, or map_to_o and count
    max_length: int = 128  # subword window length, special tokens included; longer sentences are windowed
    stride: int = 32  # subwords of context shared by consecutive windows of a long sentence
    label_all_tokens: bool = False  # train on every subword (B- becomes I- on continuations); eval stays per word
    max_train_examples: int | None = None  # keep the first N training sentences/questions (quick runs, tests)
    max_eval_examples: int | None = None  # keep the first N dev/test sentences/questions
    cache_dir: str | None = None  # tokenised-data cache; default ~/.cache/seqtag
    encoding: str = "utf-8"  # text encoding of the CoNLL/JSONL files, e.g. latin-1 or cp1252 (ASCII-compatible ones)
    on_misaligned: str = "error"  # model.head=span, character spans over raw text: a span cutting inside a word is an error, or widen it to whole words and count
    # QA only
    qa_head: str = "pointer"  # pointer: start/end logits (AutoModelForQuestionAnswering); tagging: O/B-ANS/I-ANS
    doc_stride: int = 128  # context tokens shared by consecutive windows (run_qa.py's doc_stride)
    max_answer_length: int = 30  # longest answer in subword tokens considered by decoding
    allow_unanswerable: bool = False  # SQuAD 2.0: read questions without an answer; answer "" past a no-answer threshold tuned on dev (docs/squad2.md)
    train_articles: list[int] | None = None  # on a SQuAD file, or span JSONL with doc_id: [start, end) article (document) range used for training
    dev_articles: list[int] | None = None  # [start, end) article (document) range of the dev split (same file allowed)
    test_articles: list[int] | None = None  # [start, end) article (document) range of the test split


@dataclass(frozen=True)
class LossConfig:
    name: str = "cross_entropy"  # a key of seqtag.losses.LOSSES
    params: dict[str, Any] = field(default_factory=dict)  # written flat in YAML: loss: {name: focal, gamma: 2}


@dataclass(frozen=True)
class TrainConfig:
    output_dir: str = "runs/default"  # the run directory
    overwrite: bool = False  # replace an existing, different run in output_dir
    resume: bool = False  # continue from output_dir/checkpoints/last
    epochs: int = 3  # passes over the training data
    max_steps: int | None = None  # stop after this many optimizer steps (overrides epochs when reached first)
    batch_size: int = 32  # sentences per device per micro-batch
    eval_batch_size: int = 64  # sentences per device at evaluation
    grad_accum: int = 1  # micro-batches per optimizer step; the loss is normalised per labelled token of the window
    learning_rate: float = 5e-5  # peak AdamW learning rate
    crf_learning_rate: float = 1e-2  # model.head=crf: peak rate of the CRF's scores (Adam moves them ~rate per step)
    weight_decay: float = 0.01  # applied to matrices only (p.ndim >= 2), never to biases and LayerNorm
    warmup_ratio: float = 0.1  # share of optimizer steps with linear warmup, then linear decay to 0
    max_grad_norm: float = 1.0  # gradient clipping (0 disables)
    mixed_precision: str = "no"  # no | bf16 | fp16 | auto: bf16 on GPUs with bf16 (else fp16) and on CPUs with AMX, else no
    seed: int = 42  # same seed and config give the same metrics on CPU
    group_by_length: bool = True  # batches of similar length, less padding
    early_stopping_patience: int | None = None  # stop after N epochs without dev F1 improvement
    eval_every_epoch: bool = True  # false: dev only after the last epoch, whose weights are the result (many short epochs)
    log_every: int = 10  # optimizer steps between history.jsonl step records
    nan_policy: str = "stop"  # stop: abort on a NaN/inf loss keeping the last good checkpoint; skip: skip the batch and count it
    dynamics: bool = False  # log loss-weight dynamics per step (mean logit, mean weight, share of weights < 0.01 by O/entity)
    save_every_epoch: bool = True  # write a resumable checkpoint at the end of every epoch
    plot: bool = True  # write training_curves.png
    keep_checkpoint: bool = True  # keep checkpoints/last (optimizer state, ~3x the weights) once the run finished


@dataclass(frozen=True)
class PredictConfig:
    """How NER word scores become tags, in training's dev/test scores, ``seqtag evaluate`` and ``seqtag predict``
    (whose ``--decoding`` overrides it).

    ``argmax``: each word's best tag. ``viterbi``: the best tag sequence the tag scheme allows (a CRF run: with
    its learned transitions). Unset, it is ``viterbi`` for every NER run, as measured on 2026-12-02 with MiniLM
    (``docs/study/README.md``, "Structured decoding"; the same trained runs decoded both ways, paired by seed,
    test entity F1 in seqeval's default mode): Viterbi minus argmax +0.23 points on WNUT-17 (cross-entropy, 3
    seeds, never lower), +2.43 on CoNLL-2003 at the study's reduced budget (3/3 seeds), +1.26 and +2.63 with
    focal loss γ=2; it costs no measurable prediction time (``scripts/bench_crf.py --whole``: 1.00x). A CRF run
    decoded by the argmax of its emissions lost 8-12 points. A run keeps the decoding its ``run_info.json``
    records (runs trained when argmax was the default for the linear head say ``argmax``).

    The span head (``model.head: span``) predicts every span whose score is above 0 (``sigmoid > 0.5`` for the
    binary span losses, the threshold class of ``span_multilabel``): ``nested`` keeps them all (they may
    overlap), ``flat`` keeps the best-scoring spans that do not overlap. Unset, it is ``nested``.
    """

    decoding: str | None = None  # NER: argmax | viterbi (unset: viterbi, the better on every measured run); span head: nested | flat (unset: nested)


@dataclass(frozen=True)
class HubConfig:
    repo_id: str | None = None  # push the best model here when training ends (namespace/name)
    private: bool = False  # create the repository as private
    license: str | None = None  # license written in the model card (e.g. apache-2.0), when known


@dataclass(frozen=True)
class Config:
    model: ModelConfig
    data: DataConfig
    task: str = "ner"  # ner | qa
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    hub: HubConfig = field(default_factory=HubConfig)


SECTIONS = {"model": ModelConfig, "data": DataConfig, "loss": LossConfig, "train": TrainConfig,
             "predict": PredictConfig, "hub": HubConfig}
CHOICES = {
    "task": TASKS,
    "train.mixed_precision": MIXED_PRECISION,
    "data.format": DATA_FORMATS,
    "data.scheme": SCHEMES_OR_AUTO,
    "data.train_scheme": TRAIN_SCHEMES,
    "data.on_invalid": ("error", "repair"),
    "data.unseen_labels": ("error", "map_to_o"),
    "data.on_misaligned": ("error", "widen"),
    "data.qa_head": QA_HEADS,
    "train.nan_policy": ("stop", "skip"),
    "model.head": MODEL_HEADS,
    "predict.decoding": DECODINGS,
}
