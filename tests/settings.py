"""Tiny settings the tests share: every command on timm's test models, 16 px digits, one epoch.

Importable from any test module (`from tests.settings import QUANT_FAST`); tests/conftest.py and
the area conftests re-export the names they used to define, so older imports keep working.
"""

from __future__ import annotations

# kta train: timm's test_resnet at 16x16 on the digits, one epoch, nothing logged.
TINY = [
    "model=test_resnet",
    "data.img_size=16",
    "trainer.epochs=1",
    "trainer.progress=false",
    "logger=none",
]

# kta prune: fine-tuning sees 8 digits per class (data=digits with the checkpoint's size and
# statistics); no timing rounds, no fine-tuning unless a test asks for it.
PRUNE_FAST = [
    "logger=none",
    "trainer.progress=false",
    "measure.latency=false",
    "finetune.epochs=0",
    "data=digits",
    "data.train_per_class=8",
]

# kta quantize on a tiny model: few calibration images, uncompiled int8 graph, no timing rounds.
QUANT_FAST = [
    "data=digits",
    "data.img_size=16",
    "data.train_per_class=5",
    "quant.calib_batches=2",
    "quant.compile=false",
    "measure.latency=false",
    "measure.batch_size=4",
    "logger=none",
]

# kta distill: the student side of a tiny run, timm's test models at the teacher's 16x16, few
# images, one epoch, no teacher cache on disk unless a test asks for one.
DISTILL_TINY = [
    "student=test_resnet",
    "data.train_per_class=8",
    "data.val_fraction=0.05",
    "data.test_fraction=0.1",
    "trainer.epochs=1",
    "trainer.progress=false",
    "logger=none",
    "distill.cache_dir=null",
]

# kta explain: small settings so every method runs in a fraction of a second on 2 CPU cores.
EXPLAIN_FAST = [
    "logger=none",
    "integrated_gradients.steps=4",
    "smoothgrad.samples=2",
    "shap.samples=2",
    "kernel_shap.samples=8",
    "kernel_shap.cells=4",
    "faithfulness.steps=4",
    "faithfulness.random_repeats=1",
    "patterns.images=64",
]

# kta explain, only the heatmaps: no faithfulness curves, data-set views or pattern grids.
EXPLAIN_BARE = [
    *EXPLAIN_FAST,
    "faithfulness.enabled=false",
    "views.enabled=false",
    "patterns.enabled=false",
]
