#!/bin/bash
# Issue #3: val mIoU of the custom U-Net vs the EfficientNet-Lite0 U-Net with ImageNet weights vs
# the same U-Net from random weights, after the same number of epochs, on CPU.
#   bash benchmarks/pretrained_vs_scratch.sh        (run from the repository root; ~20 min, 2 cores)
# Results land in $OUT/<name>/summary.json. ISBI: 24/6 split of ../shared/data/isbi2012 (skipped
# when absent), made as symlinks; test = val.
set -euo pipefail
PY=${PY:-python}
OUT=${OUT:-outputs/pretrained_vs_scratch}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # on a shared 2-core box: no thread oversubscription
LITE="model=unet_pretrained model.net.encoder=efficientnet_lite0"
run() { name=$1; shift; echo "== $name"; $PY -m segexp "$@" hydra.run.dir="$OUT/$name" > "$OUT/$name.log" 2>&1; }
mkdir -p "$OUT"

SYN="dataset.train.num_samples=400 trainer.epochs=6 scheduler.warmup_steps=20"
run syn_unet $SYN model=unet model.net.depth=3  # as measured in docs/models.md
run syn_lite_imagenet $SYN $LITE model.net.weights=imagenet
run syn_lite_scratch $SYN $LITE model.net.weights=null

SRC=../shared/data/isbi2012
if [ -d "$SRC/images" ]; then
  SPLIT="$OUT/isbi_24_6"
  for split in train val test; do mkdir -p "$SPLIT/$split/images" "$SPLIT/$split/masks"; done
  for i in $(seq -w 0 29); do
    for split in $([ "$i" -lt 24 ] && echo train || echo "val test"); do
      for kind in images masks; do ln -sf "$(realpath "$SRC/$kind/$i.png")" "$SPLIT/$split/$kind/$i.png"; done
    done
  done
  ISBI="dataset=folder dataset.root=$SPLIT dataset.in_channels=1 dataset.binary_masks=true \
dataset.class_names=[membrane,cell] dataset.mean=[125.2] dataset.std=[43.6] \
dataset.image_size=[256,256] dataset.batch_size=4 dataset.num_workers=0 trainer.epochs=8 \
trainer.log_every_n_steps=3 scheduler.warmup_steps=10"
  run isbi_unet $ISBI model=unet model.net.depth=3
  run isbi_lite_imagenet $ISBI $LITE model.net.weights=imagenet
  run isbi_lite_scratch $ISBI $LITE model.net.weights=null
else
  echo "skipping ISBI: $SRC not found"
fi
for f in "$OUT"/*/summary.json; do
  $PY -c "import json,sys; s=json.load(open(sys.argv[1])); print(sys.argv[1], s['best_epoch'], round(s['val']['mIoU'], 4))" "$f"
done
