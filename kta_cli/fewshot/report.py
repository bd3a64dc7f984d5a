"""Running the episodes for every shot count, and what a user reads: the rich table (method x
shots), the accuracy-vs-shots plot (PNG and TensorBoard) and the metrics.json section."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.table import Table

from kta_cli.fewshot.episodes import check_episode_shape, sample_episodes
from kta_cli.fewshot.features import FeatureSet
from kta_cli.fewshot.methods import MethodOptions, check_methods, confidence, episode_accuracies

LABELS = {"nc_un": "NC (UN)", "nc_l2n": "NC (L2N)", "nc_cl2n": "NC (CL2N)",
          "knn": "kNN", "logreg": "logistic regression"}  # fmt: skip


@dataclass
class EpisodeSettings:
    ways: int = 5
    shots: tuple[int, ...] = (1, 5)
    queries: int = 15
    episodes: int = 1000
    seed: int = 0
    methods: tuple[str, ...] = ("nc_un", "nc_l2n", "nc_cl2n", "knn", "logreg")


def evaluate_fewshot(
    novel: FeatureSet,
    base_mean: torch.Tensor | None,
    settings: EpisodeSettings,
    options: MethodOptions,
) -> dict[str, dict[int, dict[str, float]]]:
    """{method: {shots: {mean, ci95, std, episodes}}}; all methods see the same episodes of a
    shot count (a paired comparison), each shot count its own seeded draw."""
    check_methods(list(settings.methods), options)
    for shots in settings.shots:  # refuse before any episode runs
        check_episode_shape(novel.labels, novel.class_names, ways=settings.ways,
                            shots=shots, queries=settings.queries)  # fmt: skip
    results: dict[str, dict[int, dict[str, float]]] = {m: {} for m in settings.methods}
    for shots in settings.shots:
        episodes = sample_episodes(
            novel.labels, ways=settings.ways, shots=shots, queries=settings.queries,
            episodes=settings.episodes, seed=settings.seed * 1000 + shots,
        )  # fmt: skip
        accuracies = episode_accuracies(novel.features, episodes, list(settings.methods),
                                        base_mean=base_mean, options=options)  # fmt: skip
        for method, values in accuracies.items():
            results[method][shots] = confidence(values)
    return results


def results_table(title: str, results: dict[str, dict[int, dict[str, float]]]) -> Table:
    shots = sorted({s for per_shot in results.values() for s in per_shot})
    table = Table(title=title)
    table.add_column("method")
    for s in shots:
        table.add_column(f"{s}-shot", justify="right")
    for method, per_shot in results.items():
        cells = [f"{per_shot[s]['mean']:.3f} ± {per_shot[s]['ci95']:.3f}" for s in shots]
        table.add_row(LABELS.get(method, method), *cells)
    return table


def accuracy_figure(title: str, results: dict[str, dict[int, dict[str, float]]]) -> Any:
    """Accuracy vs shots, one line per method, the 95% interval as error bars."""
    import matplotlib.pyplot as plt

    from kta_cli.report import figures  # noqa: F401  (selects the Agg backend)

    figure, axes = plt.subplots(figsize=(5.5, 4))
    for method, per_shot in results.items():
        shots = sorted(per_shot)
        axes.errorbar(shots, [per_shot[s]["mean"] for s in shots],
                      yerr=[per_shot[s]["ci95"] for s in shots], marker="o", capsize=3,
                      label=LABELS.get(method, method))  # fmt: skip
    axes.set_xscale("log")
    axes.set_xticks(sorted({s for p in results.values() for s in p}))
    axes.get_xaxis().set_major_formatter(plt.ScalarFormatter())
    axes.set_xlabel("shots per class")
    axes.set_ylabel("query accuracy")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def tensorboard_scalars(tensorboard: Any, results: dict[str, dict[int, dict[str, float]]]) -> None:
    """fewshot/<method> against shots as the step: TensorBoard draws the accuracy-vs-shots line."""
    for method, per_shot in results.items():
        for shots, summary in sorted(per_shot.items()):
            tensorboard.scalars({f"fewshot/{method}": summary["mean"]}, shots)
            tensorboard.scalars({f"fewshot_ci95/{method}": summary["ci95"]}, shots)


def save_plot(run_dir: Path, title: str, results: dict, tensorboard: Any) -> Path:
    from kta_cli.report.figures import save_figure

    if tensorboard.writer is not None:  # add_figure closes the figure it is given
        tensorboard.figure("fewshot/accuracy_vs_shots", accuracy_figure(title, results))
    return save_figure(accuracy_figure(title, results), run_dir / "accuracy_vs_shots.png")
