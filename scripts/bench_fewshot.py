"""Episodes per second on cached features: kta's batched episodes against a naive per-episode
Python loop (the way few-shot evaluation is often written), side by side.

    python scripts/bench_fewshot.py            # 1000 5-way 5-shot 15-query episodes, 5 rounds
    python scripts/bench_fewshot.py --quick    # a smoke run

Both sides draw episodes and score nearest-centroid CL2N on the same (N, D) feature tensor;
rounds alternate batched / loop at a fixed thread count and the medians are reported.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from kta_cli.fewshot.episodes import sample_episodes
from kta_cli.fewshot.methods import MethodOptions, episode_accuracies


def batched(features, labels, base_mean, episodes: int, shots: int, seed: int) -> float:
    drawn = sample_episodes(labels, ways=5, shots=shots, queries=15, episodes=episodes, seed=seed)
    accuracy = episode_accuracies(features, drawn, ["nc_cl2n"], base_mean=base_mean,
                                  options=MethodOptions())["nc_cl2n"]  # fmt: skip
    return accuracy.mean().item()


def naive(features, labels, base_mean, episodes: int, shots: int, seed: int) -> float:
    rng = random.Random(seed)
    members = {c: (labels == c).nonzero().flatten().tolist() for c in labels.unique().tolist()}
    scores = []
    for _ in range(episodes):
        classes = rng.sample(sorted(members), 5)
        centroids, queries, truth = [], [], []
        for i, c in enumerate(classes):
            picked = rng.sample(members[c], shots + 15)
            x = torch.nn.functional.normalize(features[picked] - base_mean, dim=1)
            centroids.append(x[:shots].mean(0))
            queries.append(x[shots:])
            truth += [i] * 15
        predicted = torch.cdist(torch.cat(queries), torch.stack(centroids)).argmin(1)
        scores.append((predicted == torch.tensor(truth)).float().mean().item())
    return sum(scores) / len(scores)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.rounds = 50, 1
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(20).repeat_interleave(100)  # 20 novel classes, 100 images each
    features = torch.randn(20, args.dim, generator=generator)[labels] + torch.randn(
        len(labels), args.dim, generator=generator
    )
    base_mean = features.mean(0)
    contenders = {"batched": batched, "loop": naive}
    for fn in contenders.values():  # warm-up
        fn(features, labels, base_mean, 10, 5, 0)
    for shots in (1, 5):
        times = {name: [] for name in contenders}
        for round_ in range(args.rounds):
            for name, fn in contenders.items():
                start = time.perf_counter()
                fn(features, labels, base_mean, args.episodes, shots, round_)
                times[name].append(time.perf_counter() - start)
        medians = {name: statistics.median(t) for name, t in times.items()}
        rates = "  ".join(f"{n}: {args.episodes / t:,.0f} episodes/s ({t:.3f} s)"
                          for n, t in medians.items())  # fmt: skip
        print(f"{shots}-shot, 5-way, 15 queries, D={args.dim}, threads={args.threads}: {rates}  "
              f"batched is {medians['loop'] / medians['batched']:.1f}x faster")  # fmt: skip


if __name__ == "__main__":
    main()
