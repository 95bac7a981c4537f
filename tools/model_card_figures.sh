#!/usr/bin/env bash
# Recompute every figure of pretrained/MODEL_CARD.md with the installed faceiqa and its default model.
#
#   tools/model_card_figures.sh [LFW_DIR] [OUT_DIR]
#
# LFW_DIR holds images/<Name>/<Name>_NNNN.jpg and pairs.txt (default ../shared/data/lfw-train);
# OUT_DIR receives the tables, plots and score files (default runs/card). About 40 minutes on 2 CPU cores.
set -euo pipefail
LFW=${1:-../shared/data/lfw-train}
OUT=${2:-runs/card}
mkdir -p "$OUT"

# Validation identities: the people of folds 6 and 7 of pairs.txt, never seen in training.
[ -f "$OUT/val-pairs.txt" ] || faceiqa evaluate make-pairs --images "$LFW/images" \
    --people-from "$LFW/pairs.txt" --folds 6,7 --n 3000 --out "$OUT/val-pairs.txt"

# 1. Severity monotonicity per degradation kind.
faceiqa evaluate monotonicity --images "$LFW/images" --pairs "$OUT/val-pairs.txt" --limit 300 \
    --table "$OUT/monotonicity.md" | tee "$OUT/monotonicity.txt"

# 2. Real resolution: the same faces shrunk (and enlarged back) by 1.5x..6x.
faceiqa evaluate resolution --images "$LFW/images" --pairs "$OUT/val-pairs.txt" --limit 300 \
    | tee "$OUT/resolution.txt"

# 3. EDC against the baselines, on pristine photos and with half of them degraded.
[ -f "$OUT/lfw-scores.csv" ] || faceiqa score "$LFW/images" --csv "$OUT/lfw-scores.csv" -q
faceiqa evaluate edc --pairs "$OUT/val-pairs.txt" --images "$LFW/images" --scores "$OUT/lfw-scores.csv" \
    --baselines all --plot "$OUT/edc-pristine.png" --table "$OUT/edc-pristine.md" | tee "$OUT/edc-pristine.txt"
[ -d "$OUT/val-mix" ] || faceiqa evaluate degrade-set --images "$LFW/images" --pairs "$OUT/val-pairs.txt" \
    --degrade mix --degrade-fraction 0.5 --seed 1 --out "$OUT/val-mix"
[ -f "$OUT/val-mix-scores.csv" ] || faceiqa score "$OUT/val-mix" --csv "$OUT/val-mix-scores.csv" -q
faceiqa evaluate edc --pairs "$OUT/val-pairs.txt" --images "$LFW/images" --degrade mix --degrade-fraction 0.5 \
    --seed 1 --scores "$OUT/val-mix-scores.csv" --baselines all --plot "$OUT/edc-mix.png" \
    --table "$OUT/edc-mix.md" | tee "$OUT/edc-mix.txt"

# 4. Real photos (../shared/data/realfaces: non-commercial terms, measured here, never trained on):
#    ROC AUC of real high- vs low-quality faces, as is and with the hq faces shrunk to 56-71 px.
REAL=${REAL:-$(dirname "$LFW")/realfaces}
if [ -f "$REAL/index.csv" ]; then
    faceiqa evaluate realfaces --root "$REAL" --table "$OUT/realfaces.md" --scores "$OUT/realfaces-scores.csv" \
        | tee "$OUT/realfaces.txt"
    # 5. Resolution ladder from large real faces (80-590 px between the eyes), shrunk and kept small.
    faceiqa evaluate resolution --images "$REAL/hq" --factors 1,2,3,4,6,8,12 --mode down --limit 68 \
        | tee "$OUT/resolution-ladder.txt"
fi
