"""Few-shot study (issues 11 and 18): which features beat raw pixels on novel classes?

One command, several seeds. For each data set and training seed it trains a supervised model on
the base classes, distils it into a student, and scores 5-way 1-/5-shot nearest-centroid
episodes (UN, L2N, CL2N; mean +- 95% CI) on the novel data for these feature sets:
    pixels, random init (same net), supervised (pre-logits, and layer2/3/4 x avg/grid2),
    distilled student, and SimCLR when --simclr-digits / --simclr-shapes name a checkpoint.
Data: digits 0-4 -> novel digits 5-9; shapes (flat) -> the same shapes drawn in --style.

    python scripts/fewshot_study.py                   # test_resnet, 32 px, 4 epochs, 3 seeds
    python scripts/fewshot_study.py --quick           # a smoke run (16 px, 1 epoch, 1 seed)
    python scripts/fewshot_study.py --model resnet18 --epochs 4 --seeds 2   # bigger, slower

Budget (the default): timm test_resnet at 32 px, 4 epochs, 3 seeds, 400 episodes per cell,
every kta command run in this one process (no start-up per run). Prints a table per data set
(mean over seeds of the episode means, +- the mean 95% CI and +- std across seeds) and writes
fewshot_study.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from kta_runs import run_kta

DATASETS = {
    "digits": {"base": ["data.classes=[0,1,2,3,4]"], "novel": ["data.classes=[5,6,7,8,9]"]},
    "shapes": {"base": ["data=shapes", "data.per_class=100"], "novel": None},  # novel: --style
}
METHODS = ["nc_un", "nc_l2n", "nc_cl2n"]


def feature_sets(args: argparse.Namespace, dataset: str) -> list[tuple[str, list[str]]]:
    rows = [("pixels", ["fewshot.features=pixels"]), ("random init", ["fewshot.features=random"]),
            ("supervised (pre-logits)", [])]  # fmt: skip
    rows += [(f"supervised {layer}/{pool}", [f"layer={layer}", f"pool={pool}"])
             for layer in args.layers for pool in args.pools]  # fmt: skip
    rows.append(("distilled student", ["@student"]))
    simclr = getattr(args, f"simclr_{dataset}")
    if simclr and Path(simclr).exists():
        rows.append(("SimCLR (pre-logits)", [f"@ckpt={simclr}"]))
    return rows


def one_seed(args: argparse.Namespace, dataset: str, seed: int) -> dict[str, dict]:
    spec = DATASETS[dataset]
    common = [f"data.img_size={args.size}", "trainer.progress=false", "logger=none", f"seed={seed}"]
    base = [*spec["base"], *common]
    teacher = run_kta("train", f"model={args.model}", f"trainer.epochs={args.epochs}", *base,
                      f"data.seed={seed}") / "best.ckpt"  # fmt: skip
    student_args = [f"teacher.checkpoint={teacher}", f"student={args.student}",
                    f"trainer.epochs={args.epochs}", *base, f"data.seed={seed}"]  # fmt: skip
    student = run_kta("distill", *student_args) / "best.ckpt"
    novel = spec["novel"] or [f"data.test_style={args.style}"]
    results = {}
    for label, extra in feature_sets(args, dataset):
        ckpt = student if "@student" in extra else teacher
        extra = [e for e in extra if e != "@student"]
        if any(e.startswith("@ckpt=") for e in extra):
            ckpt, extra = Path(extra[0].removeprefix("@ckpt=")), extra[1:]
        folder = run_kta("fewshot", f"ckpt={ckpt}", *novel, *extra, "logger=none", f"seed={seed}",
                         f"fewshot.episodes={args.episodes}", "fewshot.shots=[1,5]",
                         f"fewshot.methods=[{','.join(METHODS)}]")  # fmt: skip
        results[label] = json.loads((folder / "metrics.json").read_text())["results"]
    if args.embed and seed == args.first_seed:
        embed_maps(args, dataset, novel, teacher, student)
    return results


def embed_maps(args: argparse.Namespace, dataset: str, novel: list[str], teacher: Path,
               student: Path) -> None:  # fmt: skip
    """t-SNE maps of the novel images in each feature set, copied to --embed-dir/<dataset>_*.png."""
    maps = [("pixels", teacher, ["features=pixels"]), ("random", teacher, ["features=random"]),
            ("supervised", teacher, []), ("distilled", student, [])]  # fmt: skip
    simclr = getattr(args, f"simclr_{dataset}")
    if simclr and Path(simclr).exists():
        maps.append(("simclr", Path(simclr), []))
    out = Path(args.embed_dir)
    out.mkdir(parents=True, exist_ok=True)
    separation = {}
    for name, ckpt, extra in maps:
        folder = run_kta("embed", f"ckpt={ckpt}", *novel, *extra, "logger=none",
                         "embed.points=500", "seed=0")  # fmt: skip
        shutil.copyfile(folder / "tsne.png", out / f"{dataset}_{name}.png")
        scores = json.loads((folder / "metrics.json").read_text())["embeddings"][0]
        separation[name] = {k: scores[k] for k in ("knn_acc", "silhouette", "points", "k")}
        print(f"t-SNE {dataset} {name}: kNN acc {scores['knn_acc']:.3f}, "
              f"silhouette {scores['silhouette']:.3f}")  # fmt: skip
    (out / f"{dataset}_separation.json").write_text(json.dumps(separation, indent=2) + "\n")


def summarise(per_seed: list[dict[str, dict]]) -> dict[str, dict]:
    """{row: {method: {shots: {mean, ci95 (mean over seeds), std over seeds}}}}."""
    out: dict[str, dict] = {}
    for row in per_seed[0]:
        out[row] = {}
        for method in METHODS:
            out[row][method] = {}
            for shots in ("1", "5"):
                means = [seed[row][method][shots]["mean"] for seed in per_seed]
                cis = [seed[row][method][shots]["ci95"] for seed in per_seed]
                std = statistics.stdev(means) if len(means) > 1 else 0.0
                cell = {"mean": statistics.mean(means), "ci95": statistics.mean(cis)}
                out[row][method][shots] = {**cell, "std_seeds": std}
    return out


def print_table(dataset: str, summary: dict[str, dict]) -> None:
    print(f"\n{dataset}: 5-way, 15 queries; mean over seeds +- mean 95% CI (std across seeds)")
    header = "".join(f"{m + ' ' + s + '-shot':>26}" for m in METHODS for s in ("1", "5"))
    print(f"{'features':<28}{header}")
    for row, methods in summary.items():
        cells = "".join(
            f"{v['mean']:>10.3f} +-{v['ci95']:.3f} ({v['std_seeds']:.3f})"
            for m in METHODS for v in (methods[m]["1"], methods[m]["5"])
        )  # fmt: skip
        print(f"{row:<28}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="test_resnet")
    parser.add_argument("--student", default="test_resnet")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=400)
    parser.add_argument("--layers", nargs="+", default=["layer2", "layer3", "layer4"])
    parser.add_argument("--pools", nargs="+", default=["avg", "grid2"])
    parser.add_argument("--style", default="texture", help="shapes: the novel drawing style")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--simclr-digits", default=None, help="a SimCLR checkpoint (digits 0-4)")
    parser.add_argument("--simclr-shapes", default=None, help="a SimCLR checkpoint (flat shapes)")
    parser.add_argument("--embed", action="store_true", help="also t-SNE maps (seed 0)")
    parser.add_argument("--embed-dir", default="docs/images/fewshot", help="where the maps go")
    parser.add_argument("--out", default="fewshot_study.json")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.size, args.epochs, args.seeds, args.episodes = 16, 1, 1, 50
        args.layers, args.pools = ["layer3"], ["avg", "grid2"]
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    out = Path(args.out).resolve()
    args.embed_dir = str(Path(args.embed_dir).resolve())
    report = {"budget": vars(args), "datasets": {}}
    with tempfile.TemporaryDirectory(prefix="kta-fewshot-study-") as work:
        os.chdir(work)  # every run folder lands here, not in the caller's outputs/
        for dataset in args.datasets:
            seeds = range(args.first_seed, args.first_seed + args.seeds)
            summary = summarise([one_seed(args, dataset, s) for s in seeds])
            report["datasets"][dataset] = summary
            print_table(dataset, summary)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
