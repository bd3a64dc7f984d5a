"""Transfer study: train a source model, then every strategy on the target with 1, 5, 10 and all
labels per class, several seeds each; then a shared backbone against separate ones (multi-task).

    python scripts/transfer_study.py                      # digits and shapes, 3 seeds
    python scripts/transfer_study.py --domains digits --seeds 2 --labels 1 10 all

Every run is a real `kta train` (in this process, so imports are paid once) with the
configs/experiment/transfer_<domain>_{source,target}.yaml files; its run folder sits in the
study folder (outputs/study/<time>/runs/...). Writes results.json, results.md and
transfer_study.png there; with --docs also its sections of docs/results.md and
docs/transfer_study.png.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

DOMAINS = {
    "digits": {"tasks": ["digit", "parity"], "what": "digits 0-4 -> digits 5-9"},
    "shapes": {"tasks": ["shape", "colour"], "what": "flat shapes -> textured, noisy shapes"},
}
STRATEGIES = (
    "scratch",
    "full",
    "freeze",
    "linear_probe",
    "partial",
    "discriminative",
    "gradual_unfreeze",
    "lp_ft",
)
COMMAND_LINE = list(sys.argv[1:])  # kta's dispatcher rewrites sys.argv for Hydra on every run
STAGES = 5  # test_resnet: stem and four stages below the head


def kta_train(overrides: list[str], run_dir: Path) -> dict[str, Any]:
    """One `kta train` in this process; its metrics.json."""
    from kta_cli.cli import main

    try:
        main(["train", *overrides, f"hydra.run.dir={run_dir}"])
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise RuntimeError(f"kta train {' '.join(overrides)} failed ({exit_.code})") from None
    return json.loads((run_dir / "metrics.json").read_text())


def train_sizes(experiment: str, budgets: list[str]) -> dict[str, int]:
    """Training images per label budget, from the composed target config's own data."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from kta_cli.data.datasets import build_data, spec_from_dict
    from kta_cli.overrides import config_dir

    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}"])
    values = OmegaConf.to_container(cfg.data, resolve=True)
    sizes = {}
    for budget in budgets:
        values["train_per_class"] = None if budget == "all" else int(budget)
        sizes[budget] = len(build_data(spec_from_dict(values)).train.labels)
    return sizes


def schedule(n_train: int, batch: int, steps: int, min_epochs: int) -> int:
    """Epochs that give about `steps` updates, so small budgets are not starved of updates."""
    return max(min_epochs, math.ceil(steps / math.ceil(n_train / batch)))


def strategy_options(name: str, epochs: int) -> list[str]:
    return {
        "linear_probe": ["strategy.cache_features=true"],
        "partial": ["strategy.frozen_stages=3"],
        "discriminative": ["strategy.layer_decay=0.7"],
        "gradual_unfreeze": [f"strategy.every={max(1, epochs // (STAGES + 1))}"],
        "lp_ft": [f"strategy.probe_epochs={max(1, epochs // 2)}"],
    }.get(name, [])


def transfer(domain: str, args: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    common = [f"trainer.threads={args.threads}"]
    source_dir = folder / "runs" / domain / "source"
    source = kta_train([f"experiment=transfer_{domain}_source", *common], source_dir)
    print(f"[{domain}] source test_acc {source['test_acc']:.3f}", flush=True)
    sizes = train_sizes(f"transfer_{domain}_target", args.labels)
    rows = []
    for budget in args.labels:
        epochs = schedule(sizes[budget], 32, args.steps, args.min_epochs)
        for name in args.strategies:
            for seed in range(args.seeds):
                per_class = "null" if budget == "all" else budget
                run_dir = folder / "runs" / domain / f"{name}_{budget}_{seed}"
                started = time.perf_counter()
                metrics = kta_train(
                    [
                        f"experiment=transfer_{domain}_target",
                        f"model.checkpoint={source_dir / 'best.ckpt'}",
                        f"strategy={name}",
                        *strategy_options(name, epochs),
                        f"data.train_per_class={per_class}",
                        f"trainer.epochs={epochs}",
                        f"seed={seed}",
                        f"data.seed={seed}",
                        *common,
                    ],
                    run_dir,
                )
                rows.append(
                    {
                        "domain": domain,
                        "strategy": name,
                        "labels": budget,
                        "seed": seed,
                        "epochs": epochs,
                        "test_acc": metrics["test_acc"],
                        "trainable": metrics["trainable_parameters"],
                        "seconds": time.perf_counter() - started,
                    }
                )
                print(
                    f"[{domain}] {name:16s} labels={budget:>3s} seed={seed} "
                    f"test_acc={metrics['test_acc']:.3f}",
                    flush=True,
                )
    return rows


def multitask(domain: str, args: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    """A shared backbone (both tasks) against one backbone per task, from scratch."""
    tasks = DOMAINS[domain]["tasks"]
    base = [
        f"experiment=transfer_{domain}_source",
        "task=multitask",
        "data.classes=null",
        f"trainer.epochs={args.mt_epochs}",
        f"trainer.threads={args.threads}",
    ]
    rows = []
    for seed in range(args.seeds):
        setups = {"shared": [tasks], "separate": [[t] for t in tasks]}
        for setup, groups in setups.items():
            accs, params = {}, 0
            for group in groups:
                run_dir = folder / "runs" / domain / f"mt_{setup}_{'+'.join(group)}_{seed}"
                metrics = kta_train(
                    [*base, f"task.tasks=[{','.join(group)}]", f"seed={seed}", f"data.seed={seed}"],
                    run_dir,
                )
                accs.update({t: metrics[f"test_acc_{t}"] for t in group})
                params += metrics["parameters"]
            rows.append({"domain": domain, "setup": setup, "seed": seed, "params": params, **accs})
            print(f"[{domain}] multitask {setup:8s} seed={seed} {accs}", flush=True)
    return rows


def command_text() -> str:
    return ("python scripts/transfer_study.py " + " ".join(COMMAND_LINE)).strip()


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def transfer_table(rows: list[dict[str, Any]], domain: str, budgets: list[str]) -> list[str]:
    lines = [
        f"Target test accuracy, mean +- std over seeds ({DOMAINS[domain]['what']}):",
        "",
        "| strategy | " + " | ".join(f"{b} / class" for b in budgets) + " |",
        "|---|" + "---:|" * len(budgets),
    ]
    for name in dict.fromkeys(r["strategy"] for r in rows if r["domain"] == domain):
        cells = []
        for budget in budgets:
            accs = [
                r["test_acc"]
                for r in rows
                if (r["domain"], r["strategy"], r["labels"]) == (domain, name, budget)
            ]
            mean, std = mean_std(accs)
            cells.append(f"{mean:.3f} +- {std:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def multitask_table(rows: list[dict[str, Any]], domain: str) -> list[str]:
    tasks = DOMAINS[domain]["tasks"]
    lines = [
        f"Multi-task on {domain} ({' + '.join(tasks)}), test accuracy, mean +- std over seeds:",
        "",
        "| setup | parameters | " + " | ".join(tasks) + " |",
        "|---|---:|" + "---:|" * len(tasks),
    ]
    for setup in ("shared", "separate"):
        mine = [r for r in rows if (r["domain"], r["setup"]) == (domain, setup)]
        if not mine:
            continue
        cells = ["{:.3f} +- {:.3f}".format(*mean_std([r[t] for r in mine])) for t in tasks]
        lines.append(f"| {setup} | {mine[0]['params']:,} | " + " | ".join(cells) + " |")
    return lines


def plot(rows: list[dict[str, Any]], domains: list[str], budgets: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(domains), figsize=(6 * len(domains), 4.2), squeeze=False)
    for ax, domain in zip(axes[0], domains, strict=True):
        for name in dict.fromkeys(r["strategy"] for r in rows if r["domain"] == domain):
            stats = [
                mean_std(
                    [
                        r["test_acc"]
                        for r in rows
                        if (r["domain"], r["strategy"], r["labels"]) == (domain, name, b)
                    ]
                )
                for b in budgets
            ]
            means = [m for m, _ in stats]
            stds = [s for _, s in stats]
            x = range(len(budgets))
            ax.errorbar(x, means, yerr=stds, marker="o", capsize=3, label=name)
        ax.set_xticks(range(len(budgets)), budgets)
        ax.set_xlabel("labelled target examples per class")
        ax.set_ylabel("target test accuracy")
        ax.set_title(DOMAINS[domain]["what"])
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def report(
    transfer_rows: list[dict[str, Any]],
    mt_rows: list[dict[str, Any]],
    args: argparse.Namespace,
    minutes: float,
    earlier: list[str],
) -> str:
    lines = [
        "# Results",
        "",
        "## Transfer study: strategies against the number of target labels",
        "",
        "Produced by:",
        "",
        f"    {command_text()}",
        *(f"    (rows of the other domain from an earlier run: {c})" for c in earlier),
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d}, 2-core CPU (AVX-512 VNNI), torch "
        f"{__import__('torch').__version__}, trainer.threads={args.threads}, "
        f"{args.seeds} seeds, about {args.steps} updates per target run; "
        f"wall time {minutes:.1f} min, CPU time {time.process_time() / 60:.1f} min "
        "(the machine was shared with other jobs).",
        "Model: timm test_resnet at 16x16; source trained from scratch on the source task; "
        "every target run starts from it with a fresh linear head (scratch re-initialises).",
        "",
    ]
    for domain in args.domains:
        lines += [*transfer_table(transfer_rows, domain, args.labels), ""]
    lines += ["![target accuracy vs labels per class](transfer_study.png)", ""]
    if mt_rows:
        lines += ["## Multi-task: one shared backbone against one backbone per task", ""]
        for domain in args.domains:
            lines += [*multitask_table(mt_rows, domain), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", nargs="+", default=list(DOMAINS), choices=list(DOMAINS))
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--labels", nargs="+", default=["1", "5", "10", "all"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30, help="updates per target run (about)")
    parser.add_argument("--min-epochs", type=int, default=4)
    parser.add_argument("--mt-epochs", type=int, default=3, help="epochs of each multi-task run")
    parser.add_argument("--no-multitask", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--docs", action="store_true", help="also write docs/results.md")
    parser.add_argument(
        "--merge", type=Path, default=None, help="keep other domains' rows from this results.json"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    folder = args.out or REPO / "outputs" / "study" / f"{datetime.now():%Y-%m-%d_%H-%M-%S}"
    folder.mkdir(parents=True, exist_ok=True)
    transfer_rows, mt_rows, earlier = [], [], []
    if args.merge:  # rows of domains not rerun now, with the command that made them
        merged = json.loads(args.merge.read_text())
        keep = [
            d
            for d in DOMAINS
            if d not in args.domains and any(r["domain"] == d for r in merged["transfer"])
        ]
        transfer_rows += [r for r in merged["transfer"] if r["domain"] in keep]
        mt_rows += [r for r in merged["multitask"] if r["domain"] in keep]
        earlier = [merged.get("command", str(args.merge))] if keep else []
        args.domains = keep + args.domains
    for domain in args.domains:
        if any(r["domain"] == domain for r in transfer_rows):
            continue
        transfer_rows += transfer(domain, args, folder)
        if not args.no_multitask:
            mt_rows += multitask(domain, args, folder)
        (folder / "results.json").write_text(
            json.dumps(
                {"command": command_text(), "transfer": transfer_rows, "multitask": mt_rows},
                indent=1,
            )
        )
    plot(transfer_rows, args.domains, args.labels, folder / "transfer_study.png")
    text = report(transfer_rows, mt_rows, args, (time.perf_counter() - started) / 60, earlier)
    (folder / "results.md").write_text(text)
    print(text)
    if args.docs:  # its own sections of docs/results.md; the other studies' stay
        from docs_section import write_sections

        write_sections(text)
        shutil.copy(folder / "transfer_study.png", REPO / "docs" / "transfer_study.png")
    print(f"study folder: {folder}")


if __name__ == "__main__":
    main()
