"""Transfer study run with kta's own tools (issue 13): a resnet18 source on digits 0-4, then each
strategy on digits 5-9 with 1, 10 and all labels per class. Every strategy's learning rate is
chosen on the validation split by `kta sweep` (a grid, seed 0); the chosen setting then runs on
more seeds, and `kta compare` groups the runs that differ only in seed (mean +- std, n).

    python scripts/transfer_sweep_study.py              # 24 minutes on 2 idle cores (measured)
    python scripts/transfer_sweep_study.py --quick      # test_resnet at 16 px: under a minute

Writes results.json, results.md and transfer_sweep.png in the study folder (default
outputs/study_transfer_sweep/<time>: each run trains its own source, so a study folder is never
continued); with --docs also its section of docs/results.md and
docs/images/transfer_sweep.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from docs_section import write_sections  # noqa: E402
from kta_runs import call_kta, run_kta  # noqa: E402

HEADING = "Transfer study at 32 px: resnet18, each strategy's learning rate chosen by kta sweep"

COMMAND_LINE = " ".join(sys.argv[1:])  # kta's dispatcher rewrites sys.argv on every command
STRATEGIES = ("scratch", "linear_probe", "lp_ft", "full")
# Epochs per label budget: about 50 updates or more, enough for the training loss to settle in
# every strategy (1 and 10 per class are 1-2 batches an epoch; all labels are about 15).
EPOCHS = {"1": 50, "10": 40, "all": 20}


def strategy_options(name: str, epochs: int) -> list[str]:
    return {
        "linear_probe": ["strategy.cache_features=true"],
        "lp_ft": [f"strategy.probe_epochs={epochs // 2}"],
    }.get(name, [])


def swept(space: Path, name: str, base: list[str], trials: int) -> dict[str, Any]:
    """A grid sweep of the learning rate on seed 0; its best.yaml (the chosen trial)."""
    folder = Path("sweeps") / name
    call_kta(
        "sweep", "train", f"sweep={space.resolve()}", "sweep.sampler=grid", "sweep.pruner=none",
        f"sweep.trials={trials}", "sweep.metric=val_acc", f"sweep.name={name}",
        f"sweep.dir={folder}", *base, "seed=0", "data.seed=0",
    )  # fmt: skip
    import yaml

    return yaml.safe_load((folder / "best.yaml").read_text())


def reseeded(overrides: list[str], seed: int) -> list[str]:
    kept = [o for o in overrides if o.partition("=")[0] not in ("seed", "data.seed")]
    return [*kept, f"seed={seed}", f"data.seed={seed}"]


def cell_of(row: dict[str, Any]) -> tuple[str, str]:
    """(strategy, labels per class) of a kta compare row, from its overrides."""
    pairs = dict(o.partition("=")[::2] for o in row["overrides"].split())
    labels = pairs.get("data.train_per_class", "null")
    return pairs["strategy"], "all" if labels == "null" else labels


def markdown(table: dict, chosen: dict, args: argparse.Namespace, extra: dict) -> str:
    labels = args.labels
    header = ["| strategy | " + " | ".join(f"{b} / class" for b in labels) + " |",
              "|---|" + "---:|" * len(labels)]  # fmt: skip
    accuracy, rates = list(header), list(header)
    for name in args.strategies:
        cells = ["{:.3f} +- {:.3f} (n={})".format(*table[name][b]) for b in labels]
        accuracy.append(f"| {name} | " + " | ".join(cells) + " |")
        edge = (min(args.lrs), max(args.lrs))
        lrs = [f"{chosen[name][b]:g}" + (" *" if chosen[name][b] in edge else "") for b in labels]
        rates.append(f"| {name} | " + " | ".join(lrs) + " |")
    head = [
        f"    python scripts/transfer_sweep_study.py {COMMAND_LINE}".rstrip(),
        "",
        f"Model {args.model} at {args.img_size} px; source: {extra['source_epochs']} epochs on "
        f"digits 0-4 (test acc {extra['source_acc']:.3f}). Target: digits 5-9; epochs per "
        f"budget {json.dumps({b: EPOCHS[b] for b in labels})}; learning-rate grid "
        f"{args.lrs} (SGD, cosine), chosen per cell on the last epoch's val_acc of seed 0 "
        f"(the weights that are tested); {args.seeds} seeds of the chosen setting. "
        f"{extra['runs']} runs, wall time {extra['minutes']:.1f} min; load average "
        f"{extra['load_before']} before, {extra['load_after']} after.",
        "",
        "Target test accuracy, mean +- std over seeds (digits 0-4 -> digits 5-9):",
        "",
    ]
    tail = ["", "Learning rate chosen on validation (* at an end of the grid):", ""]
    return "\n".join(head + accuracy + tail + rates) + "\n"


def plot(table: dict, args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6, 4.2))
    for name in args.strategies:
        stats = [table[name][b] for b in args.labels]
        ax.errorbar(range(len(args.labels)), [s[0] for s in stats], yerr=[s[1] for s in stats],
                    marker="o", capsize=3, label=name)  # fmt: skip
    ax.set_xticks(range(len(args.labels)), args.labels)
    ax.set_xlabel("labelled target examples per class")
    ax.set_ylabel("target test accuracy")
    ax.set_title(f"digits 0-4 -> 5-9, {args.model} @{args.img_size} px", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def study(args: argparse.Namespace) -> dict[str, Any]:
    quiet = ["trainer.progress=false", "logger=none", f"trainer.threads={args.threads}",
             "trainer.checkpoint_every=10"]  # fmt: skip
    model = [f"model={args.model}", f"data.img_size={args.img_size}"]
    source = run_kta("train", "experiment=transfer_digits_source", *model,
                     f"trainer.epochs={args.source_epochs}", *quiet)  # fmt: skip
    source_acc = json.loads((source / "metrics.json").read_text())["test_acc"]
    print(f"source {source}: test_acc {source_acc:.3f}", flush=True)
    space = Path("space.yaml")
    space.write_text(json.dumps({"params": {"optim.lr": list(args.lrs)}}) + "\n")
    folders, chosen, runs = [], {s: {} for s in args.strategies}, 0
    for budget in args.labels:
        epochs = EPOCHS[budget]
        for name in args.strategies:
            per_class = "null" if budget == "all" else budget
            base = ["experiment=transfer_digits_target", *model,
                    f"model.checkpoint={source / 'best.ckpt'}", f"strategy={name}",
                    *strategy_options(name, epochs), f"data.train_per_class={per_class}",
                    f"trainer.epochs={epochs}", *quiet]  # fmt: skip
            best = swept(space, f"{name}_{budget}", base, len(args.lrs))
            chosen[name][budget] = best["params"]["optim.lr"]
            folders.append(best["run_dir"])
            for seed in range(1, args.seeds):
                folders.append(str(run_kta("train", *reseeded(best["overrides"], seed))))
            runs += len(args.lrs) + args.seeds - 1
            print(f"{name} {budget}/class: lr {chosen[name][budget]:g}", flush=True)
    compared = run_kta("compare", *folders, "metrics=[test_acc,val_acc]")
    rows = json.loads((compared / "compare.json").read_text())["rows"]
    table: dict[str, dict[str, tuple[float, float, int]]] = {s: {} for s in args.strategies}
    for row in rows:
        name, budget = cell_of(row)
        table[name][budget] = (row["test_acc_mean"], row["test_acc_std"] or 0.0, row["n"])
    return {"table": table, "chosen": chosen, "runs": runs + 1, "source_acc": source_acc,
            "compare": str(compared)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--source-epochs", type=int, default=30)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--labels", nargs="+", default=list(EPOCHS), choices=list(EPOCHS))
    parser.add_argument("--lrs", nargs="+", type=float, default=[0.003, 0.01, 0.03, 0.1, 0.3])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="a new folder")
    parser.add_argument("--quick", action="store_true", help="test_resnet, 16 px, 2 seeds")
    parser.add_argument("--docs", action="store_true", help="also write docs/results.md")
    args = parser.parse_args()
    if args.quick:
        args.model, args.img_size, args.source_epochs, args.seeds = "test_resnet", 16, 2, 2
        args.labels, args.strategies, args.lrs = ["1", "all"], ["scratch", "full"], [0.01, 0.1]
        EPOCHS.update({"1": 3, "all": 2})
    docs = Path(__file__).resolve().parents[1] / "docs"
    load_before = f"{os.getloadavg()[0]:.2f}"
    started = time.perf_counter()
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    args.out = args.out or Path("outputs/study_transfer_sweep") / stamp
    if args.out.exists() and any(args.out.iterdir()):  # its sweeps would refuse a new source
        sys.exit(f"transfer_sweep_study: {args.out} is not empty; give a new --out folder")
    args.out.mkdir(parents=True, exist_ok=True)
    os.chdir(args.out)
    found = study(args)
    extra = {"minutes": (time.perf_counter() - started) / 60, "load_before": load_before,
             "load_after": f"{os.getloadavg()[0]:.2f}", "source_epochs": args.source_epochs,
             **found}  # fmt: skip
    text = markdown(found["table"], found["chosen"], args, extra)
    Path("results.md").write_text(text)
    Path("results.json").write_text(json.dumps(extra, indent=1, default=str) + "\n")
    plot(found["table"], args, Path("transfer_sweep.png"))
    print(text)
    if args.docs:
        shutil.copy("transfer_sweep.png", docs / "images" / "transfer_sweep.png")
        figure = "![target accuracy against labels](images/transfer_sweep.png)\n"
        write_sections(f"## {HEADING}\n\n{text}\n{figure}", docs / "results.md")
    print(f"study folder: {Path.cwd()}")


if __name__ == "__main__":
    main()
