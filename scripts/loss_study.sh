#!/usr/bin/env bash
# The loss study on WNUT-17 (README, "The loss study"): MiniLM BERT, CPU, bf16, a fixed budget per run.
#
#   bash scripts/loss_study.sh                 # phase 1: every loss setting at each rate of the grid, seed 1
#   PHASE=2 bash scripts/loss_study.sh         # phase 1, then seeds 2 and 3 at each setting's best rate
#
# Environment: OUT (sweep directory), CONFIG, LRS (the grid), LOSSES, SEEDS, EXTRA (more key=value overrides),
# REPEAT_MIN_DEV_F1 (seeds 2-3 only for settings whose best grid dev F1 reaches it). The CoNLL-2003 study in the
# README (first 3,000 training sentences, grid 2e-4/4e-4, ~2 min per run):
#   CONFIG=configs/conll2003_local.yaml OUT=runs/study-conll2003 LRS="2e-4 4e-4" EXTRA=data.max_train_examples=3000 \
#       REPEAT_MIN_DEV_F1=0.5 PHASE=2 bash scripts/loss_study.sh
# On WNUT-17 (the defaults) each run is about 70 s on 2 quiet cores (2 epochs of 3,394 sentences, bf16); the full
# protocol is 12 settings x 3 rates + 24 seeds, about 70 minutes. Finished runs are skipped, so either phase can be stopped and started again. Results: $OUT/results.md,
# results.csv, f1_by_loss.png, dev_f1_per_epoch.png, dynamics.png.
set -euo pipefail
OUT=${OUT:-runs/study-wnut17}
CONFIG=${CONFIG:-configs/wnut17_local.yaml}
LRS=${LRS:-5e-5 1e-4 2e-4}
LOSSES=${LOSSES:-cross_entropy focal:gamma=1 focal:gamma=2 hard_truncation:threshold=0.5 lstar:k=0.25 lstar:k=0.5 lstar:k=1 lstar:k=2 lstar_logodds:k=1 lstar_logodds:k=2 dice ce_invfreq=cross_entropy:weight=inverse_frequency}
SEEDS=${SEEDS:-1}
if [ "${PHASE:-1}" = 2 ]; then SEEDS="1 2 3"; fi
REPEAT=()
if [ -n "${REPEAT_MIN_DEV_F1:-}" ]; then REPEAT=(--repeat-min-dev-f1 "$REPEAT_MIN_DEV_F1"); fi
# shellcheck disable=SC2086
# predict.decoding=argmax: the study's tables were measured with word-by-word argmax decoding (the default then);
# a setting chooses Viterbi with @decoding=viterbi (e.g. focal:gamma=2@decoding=viterbi)
seqtag sweep "$CONFIG" predict.decoding=argmax ${EXTRA:-} train.epochs=2 train.dynamics=true train.save_every_epoch=false train.log_every=5 \
    --losses $LOSSES --seeds $SEEDS --lrs $LRS --out "$OUT" "${REPEAT[@]}"
