"""The `evaluate` verb's options, declared once (`EvaluateOptions`), and the defaults evaluation
shares with other verbs: the healthy class and the size of the heatmap sample.

Light (no Keras, no scikit-learn) so that `python -m training --help` builds the options cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.bounds import MAX_IMAGES, count
from training.options import option

# The model's healthy class: `versus_normal` compares each disease class with it
# (`evaluate --normal-class` names another, e.g. an OCT model's "NO_DME").
HEALTHY_CLASS = "normal"
# Grad-CAM costs about 0.03 s per 224-px image on a busy 2-core CPU (plus a few seconds tracing
# it once), so the heatmap figure is measured on a fixed, seeded sample of the split.
HEATMAP_IMAGES = 200


@dataclass(frozen=True)
class EvaluateOptions:
    """`evaluate`: a model judged on a data set's split."""

    model: str = option(required=True)
    data: str = option(required=True)
    split: str | None = option(choices=("train", "val", "test", "all"),
                               help="which images to judge (default: test when the folder has a splits.csv, else "
                               "all of them: an external set such as messidor2). Referable diabetic retinopathy (ICDR "
                               "grade >= 2) is reported when the data gives grades: a grade column in splits.csv or a "
                               "grades.csv (file,grade[,group])")
    out: str | None = option(help="folder for metrics.json and plots")
    json: bool = option(False, help="print the metrics object only")
    store_temperature: bool = option(False, help="write the fitted temperature into the model's sidecar")
    bootstrap: int = option(1000, type=count(0, 100_000))
    trust_model: bool = option(False)
    source: tuple[str, ...] = option(repeat=True, metavar="NAME=REGEX",
                                     help="also report each class's sensitivity for the files whose path matches "
                                     "REGEX (repeatable; e.g. ODIR='/\\d+_(left|right)\\.jpg$')")
    heatmaps: int = option(HEATMAP_IMAGES, type=count(0, MAX_IMAGES), metavar="N",
                           help="fundus models: Grad-CAM of the reported class on N images of the split (seeded "
                           "sample) and the share of its mass inside the fundus field of view, median and 10th "
                           "percentile (default 200; 0 skips it; about 0.03 s per image on a 2-core CPU)")
    normal_class: str = option(HEALTHY_CLASS, metavar="CLASS",
                               help="the model's healthy class: each disease present in the data is reported against "
                               "it on those two classes' images (AUC, sensitivity, referred, specificity)")
    store_external: str | None = option(nargs="?", const="", metavar="NAME",
                                        help="store these figures in the model's sidecar under metrics.external.NAME "
                                        "(default NAME: the data folder's name) with this command, for the model "
                                        "card's External data table; for data sets the model never trained on "
                                        "(--data ../shared/data/fundus-external); the test-split figures and the "
                                        "temperature are left as they are")
