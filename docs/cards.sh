#!/usr/bin/env bash
# Renders the model cards from the shipped models' sidecars (run from the repository root).
# The figures come from the sidecars, written by `classify`/`evaluate` and `fit-checks`.
set -euo pipefail
python3 -m training card --model models/keras_model.h5 --out docs/model-card-fundus4.md \
  --intended-use "Research and teaching: shows what a small CNN trained from scratch on public fundus photographs outputs for a colour fundus photograph (cataract, diabetic retinopathy, glaucoma or normal), with a heatmap of what drove it. It is not for screening, diagnosis or any clinical decision." \
  --limitation "fundus4 mixes sources (ODIR-5K, EyePACS, a small glaucoma/cataract set), each with its own camera, colour and framing: the model can learn which camera as much as which disease. Diabetic retinopathy images come mostly from EyePACS, so its high scores partly reflect the source. Judge it on heatmaps as well as scores." \
  --limitation "Glaucoma and cataract are the scarce classes (297 and 282 training images); glaucoma against normal is the hardest distinction and the weakest figure." \
  --limitation "Targets of the issue (macro AUC 0.95, balanced accuracy 0.85, glaucoma sensitivity 0.85) are not met by this from-scratch model; the figures above are what was measured." \
  --limitation "Labels are per image from public data sets, not adjudicated grades; an image may carry more than one disease but gets one label." \
  --limitation "Image checks (models/modality/ plus thresholds in the sidecar) flag non-fundus input and ungradable photos; they are not a guarantee."
python3 -m training card --model models/oct/keras_model.h5 --out docs/model-card-oct-dme.md \
  --intended-use "Research and teaching: shows what a small CNN trained on one public clinical OCT data set outputs for a macular OCT B-scan (diabetic macular edema vs none). It is not for screening, diagnosis or any clinical decision." \
  --limitation "Trained on one public Mexican clinical data set (Hughes-Cano et al.), one device, downscaled B-scans of 704 x 286: other devices, scan protocols and populations are untested." \
  --limitation "DME is the scarce class: 88 training scans, 15 validation and 20 test scans, so every DME figure has a wide confidence interval (one test scan moves sensitivity by 5 points)." \
  --limitation "Targets not met: ROC AUC 0.957 against the 0.97 target, and DME sensitivity 0.80 at specificity 0.91 against 0.90 at 0.90. Early stopping chose epoch 13 on a validation split with only 15 DME scans; a longer run with a lower learning rate is the next thing to try." \
  --limitation "One B-scan per judgement: a DICOM volume is read by its middle frame, which may miss edema away from the fovea." \
  --limitation "Image checks (models/modality/ plus thresholds in the sidecar) flag non-OCT input and poor scans; they are not a guarantee."
