"""`kta embed`: t-SNE PNG, projector files and separation figures, two checkpoints side by side."""

import json

from tests.fewshot.conftest import base_ckpt  # noqa: F401  (session fixture)


def test_embed_writes_its_png_projector_files_and_separation(kta, base_ckpt):  # noqa: F811
    result = kta(
        "embed", f"ckpt={base_ckpt}", f"compare={base_ckpt}", "data.classes=[5,6,7,8,9]",
        "embed.points=60", "embed.thumbnails=true", "logger=none",
    )  # fmt: skip
    assert result.code == 0, result.err
    run_dir = result.run_dir("embed")
    assert (run_dir / "tsne.png").stat().st_size > 10_000
    projector = run_dir / "projector"
    metadata = sorted(projector.rglob("metadata.tsv"))
    assert len(metadata) == 2 and sorted(projector.rglob("sprite.png"))
    names = metadata[0].read_text().split()
    assert len(names) <= 60 and set(names) == set("56789")  # stratified: every class shown
    metrics = json.loads((run_dir / "metrics.json").read_text())
    first, second = metrics["embeddings"]
    assert 0 <= first["knn_acc"] <= 1 and -1 <= first["silhouette"] <= 1
    assert first["knn_acc"] == second["knn_acc"]  # the same checkpoint on the same images


def test_embed_refuses_an_unknown_layer_with_one_line(kta, base_ckpt):  # noqa: F811
    result = kta("embed", f"ckpt={base_ckpt}", "layer=layer9", "logger=none")
    assert result.code == 2 and "did you mean" in result.err
    assert len(result.err.strip().splitlines()) == 1
