"""Write a SQuAD 2.0 training file with a larger share of unanswerable questions, by removing answerable questions
only (:func:`seqtag.data.qa_subsets.drop_answerable`: every unanswerable question kept, a fixed seeded subset of
the answerable ones).

The loss study's 80 %-unanswerable training set (docs/squad2.md): articles 1-12 of the shared SQuAD 2.0 file
(2,342 unanswerable of 4,449 questions, 52.6 %) become 2,342 unanswerable of 2,927 (80.0 %):

    PYTHONPATH=. python scripts/squad2_subsample.py --input ../shared/data/squad2/dev-v2.0-half.json \\
        --articles 0 12 --unanswerable-share 0.8 --seed 0 --output runs/squad2-train-u80.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from seqtag.data.qa_subsets import drop_answerable, unanswerable_counts
from seqtag.data.squad import squad_articles
from seqtag.errors import SeqtagError
from seqtag.runs import write_text_atomic


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True, help="a SQuAD 2.0 .json or .zip")
    p.add_argument("--articles", nargs=2, type=int, metavar=("START", "END"),
                   help="keep articles [START, END) of the file first (as data.train_articles); default: all")
    p.add_argument("--unanswerable-share", type=float, required=True, help="the share to reach, e.g. 0.8")
    p.add_argument("--seed", type=int, default=0, help="draws the answerable questions kept (default 0)")
    p.add_argument("--output", required=True, help="the SQuAD 2.0 JSON file to write")
    args = p.parse_args(argv)
    try:
        articles = squad_articles(args.input)
        if args.articles:
            start, end = args.articles
            if not 0 <= start < end <= len(articles):
                raise SeqtagError(f"--articles {start} {end}: {args.input} has {len(articles)} articles; give "
                                  f"0 <= START < END <= {len(articles)}")
            articles = articles[start:end]
        subset = drop_answerable(articles, args.unanswerable_share, args.seed)
        if not Path(args.output).resolve().parent.is_dir():
            raise SeqtagError(f"cannot write {args.output}: its directory does not exist; create it first")
    except SeqtagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_text_atomic(Path(args.output), json.dumps({"version": "v2.0", "data": subset}, ensure_ascii=False))
    before, after = unanswerable_counts(articles), unanswerable_counts(subset)
    print(f"{args.output}: {after[0]:,} unanswerable of {after[1]:,} questions ({100 * after[0] / after[1]:.1f} %); "
          f"the input had {before[0]:,} of {before[1]:,} ({100 * before[0] / before[1]:.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
