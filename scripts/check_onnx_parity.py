"""Do the ONNX exports of a run find the run's entities? torch fp32, ONNX fp32 and ONNX int8 on one labelled file.

All three tag the same sentences through the same code (``seqtag.inference.predict.Tagger``: windows, batching, merge
of windows, first-subword rule, the run's decoding: ``load_tagger`` and ``load_onnx_tagger``); only the model
differs. For each ONNX model the report counts the sentences
whose entity set (type, first word, end word) is identical to torch fp32's, names every sentence where it is
not (line in the file, the words, both entity lists), and gives entity F1 of each model against the file's
tags (``seqtag.metrics.ner_report``, conlleval mode, in the run's tag scheme). The exports are those of ``seqtag
export`` without and with ``--fuse`` (ONNX Runtime's transformer fusions, where the model's family fuses), each in
float32 and int8; their ``export_info.json`` is summarised. Exit status 1 when a float32 export differs from torch
anywhere, or when an int8 export's entity F1 is more than ``--max-int8-f1-drop`` points under torch's.

    PYTHONPATH=. python scripts/check_onnx_parity.py --run runs/conll2003-minilm \\
        --data ../shared/data/conll2003/dev.txt --out bench/onnx_parity.md
    PYTHONPATH=. python scripts/check_onnx_parity.py --run runs/quickstart --data \\
        seqtag/data/bundled/wnut17/dev.txt --max-sentences 20                      # smoke run

The exports are written to ``--exports`` (default: a temporary directory, removed) as ``fp32/``, ``int8/``,
``fp32-fused/`` and ``int8-fused/``; exports already there from the same run are reused.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import _bench_common as bc
import _bench_onnx as bo


def entity_set(tags: list[str], scheme: str) -> set[tuple[str, int, int]]:
    from seqtag.data import schemes

    return set(schemes.spans(tags, scheme))


def describe(ents: set[tuple[str, int, int]], with_text: list[str] | None = None) -> list[tuple]:
    """Entities as (type, first word, end word), sorted; with ``with_text`` (the words), their text too.

    The report names sentences by file:line and words by position, without their text unless ``--show-text``:
    a corpus without an open licence (CoNLL-2003) must not end up in a committed report.

    >>> describe({("PER", 0, 2)}), describe({("PER", 0, 2)}, ["Ada", "Lovelace", "wrote"])
    ([('PER', 0, 2)], [('PER', 0, 2, 'Ada Lovelace')])
    """
    return sorted((typ, a, b) if with_text is None else (typ, a, b, " ".join(with_text[a:b])) for typ, a, b in ents)


def read_gold(run: Path, path: str, limit: int | None):
    """Sentences of ``path`` (the run's column settings) with tags in the run's training scheme."""
    from seqtag.config import load_config
    from seqtag.data import schemes
    from seqtag.data.readers import read_sentences

    cfg = load_config(run / "seqtag_config.yaml")
    kw = {} if path.endswith((".json", ".jsonl")) else {"token_column": cfg.data.token_column,
                                                        "tag_column": cfg.data.tag_column}
    sents = read_sentences(path, **kw)[:limit]
    gold = [list(s.tags) for s in sents]
    source = schemes.detect_scheme(gold)
    if source != cfg.data.train_scheme:
        gold = [schemes.convert(t, source, cfg.data.train_scheme) for t in gold]
    return sents, gold, cfg.data.train_scheme


def load_taggers(run: Path, exports: Path, batch_size: int, threads: int) -> tuple[dict, list[str]]:
    """Torch fp32 and the ONNX exports (written into ``exports``, or reused from there) as taggers with the run's
    decoding (``predict.decoding``, a CRF's transitions), and one line per export summarising its
    export_info.json."""
    from seqtag.inference.onnx import read_export_info
    from seqtag.inference.predict import load_onnx_tagger, load_tagger

    taggers = {"torch fp32": load_tagger(run, batch_size=batch_size, device="cpu")}
    graphs = []
    for fuse in (False, True):
        for precision, quantize in (("fp32", None), ("int8", "int8")):
            name, folder = f"onnx {precision}", precision
            if fuse:
                name, folder = f"{name} fused", f"{folder}-fused"
            taggers[name] = load_onnx_tagger(bo.exported(run, exports / folder, quantize, fuse), batch_size,
                                             threads=threads)
            info = read_export_info(exports / folder)
            graphs.append(f"- {name}: fused {', '.join(f'{op} {n}' for op, n in info.fused_ops.items()) or 'none'}; "
                          f"int8 weights of {', '.join(info.quantized_ops) or 'none'}; exporter {info.exporter}"
                          + "".join(f"; {note}" for note in info.notes))
    return taggers, graphs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a finished seqtag NER run")
    p.add_argument("--data", default=str(bc.DATA.resolve() / "dev.txt"), help="labelled CoNLL/JSONL file (default: "
                   "CoNLL-2003 dev)")
    p.add_argument("--max-sentences", type=int, help="first N sentences (default: all)")
    p.add_argument("--show-text", action="store_true",
                   help="quote the sentences that differ and their entities' text (never for a report you commit "
                        "on data without an open licence, such as CoNLL-2003)")
    p.add_argument("--exports", help="directory for the fp32/ and int8/ exports (kept; reused when present)")
    p.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-int8-f1-drop", type=float, default=0.3,
                   help="entity F1 points an int8 export may lose against torch fp32 (default 0.3)")
    p.add_argument("--out", help="also write the report (markdown) here")
    args = p.parse_args(argv)

    import torch

    from seqtag.metrics import ner_report
    from seqtag.runs import require_finished_run

    torch.set_num_threads(args.threads)
    run = require_finished_run(args.run).resolve()
    sents, gold, scheme = read_gold(run, args.data, args.max_sentences)
    words = [list(s.tokens) for s in sents]
    exports = Path(args.exports or tempfile.mkdtemp(prefix="seqtag-onnx-parity-"))
    exports.mkdir(parents=True, exist_ok=True)
    taggers, graphs = load_taggers(run, exports, args.batch_size, args.threads)
    tags, seconds = {}, {}
    for name, tagger in taggers.items():
        t = time.perf_counter()
        tags[name] = [t for t, _ in tagger.tag(words)]
        seconds[name] = time.perf_counter() - t
    ref = [entity_set(t, scheme) for t in tags["torch fp32"]]
    f1 = {name: ner_report(gold, pred, scheme)["f1"] for name, pred in tags.items()}
    rows, sections, differ_by_model = [], [], {}
    for name in taggers:
        mine = [entity_set(t, scheme) for t in tags[name]]
        differ = differ_by_model[name] = [i for i, (a, b) in enumerate(zip(ref, mine)) if a != b]
        n_tags = sum(a != b for x, y in zip(tags["torch fp32"], tags[name]) for a, b in zip(x, y))
        rows.append([name, f"{len(sents) - len(differ):,} / {len(sents):,}", f"{n_tags:,}",
                     f"{sum(map(len, mine)):,}", f"{100 * f1[name]:.2f}",
                     f"{100 * (f1[name] - f1['torch fp32']):+.2f}", bc.fmt(seconds[name], 1)])
        if name != "torch fp32":
            lines = [f"### {name}: {len(differ)} sentence(s) whose entities differ from torch fp32"]
            for i in differ:
                text = words[i] if args.show_text else None
                lines.append(f"- {args.data}:{sents[i].line}" + (f": {' '.join(words[i])}" if text else "") + "\n"
                             f"  - torch fp32: {describe(ref[i], text)}\n"
                             f"  - {name}: {describe(mine[i], text)}")
            sections.append("\n".join(lines))
    table = bc.markdown_table(
        ["model", "sentences with identical entities", "word tags differing", "entities", "entity F1",
         "F1 - torch fp32 (points)", "tagging s (not a benchmark)"],
        rows, right=[False] + [True] * 6)
    header = f"Run: {run}. Data: {args.data}, {len(sents):,} sentences, {sum(map(len, words)):,} words; " \
             f"scheme {scheme}; {args.threads} threads; {bc.command_line()}"
    int8_drops = {name: 100 * (f1["torch fp32"] - f1[name]) for name in taggers if "int8" in name}
    fp32_differ = {name: len(d) for name, d in differ_by_model.items() if "fp32" in name and name != "torch fp32"}
    verdict = ("Sentences whose entities differ from torch fp32's: "
               + ", ".join(f"{name} {n}" for name, n in fp32_differ.items()) + " (allowed: 0). Entity F1 points lost "
               "against torch fp32: " + ", ".join(f"{name} {drop:.2f}" for name, drop in int8_drops.items())
               + f" (allowed: {args.max_int8_f1_drop:g}).")
    bc.write_report("\n\n".join([header, "Exports (their export_info.json):\n\n" + "\n".join(graphs), table, verdict,
                                  *sections]), args.out)
    if not args.exports:
        import shutil

        shutil.rmtree(exports, ignore_errors=True)
    return 1 if any(fp32_differ.values()) or max(int8_drops.values()) > args.max_int8_f1_drop else 0


if __name__ == "__main__":
    sys.exit(main())
