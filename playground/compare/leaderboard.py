"""The team's leaderboard of models from the votes on comparison rows.

Each vote is one match among the row's models, in the order the votes were
cast (then by id):
- a chosen cell: its model beats every other model of the row (a win for
  it, a loss for each other one);
- "tie": a draw between every pair of the row's models (a tie for each);
- "all bad": skipped by the rating (nothing won or lost); counted apart.

Elo (start 1000, K 32): within one vote, every pairwise change is computed
from the ratings before the vote, then all are applied together."""

from __future__ import annotations

from dataclasses import dataclass, field

START = 1000.0
K = 32.0


def expected(ra: float, rb: float) -> float:
    return 1.0 / (1.0 + 10 ** ((rb - ra) / 400.0))


@dataclass
class Standing:
    key: str  # "provider:model"
    rating: float = START
    wins: int = 0
    losses: int = 0
    ties: int = 0
    all_bad: int = 0
    votes: int = 0  # votes that moved the rating (all bad excluded)
    label: str = ""


@dataclass
class Board:
    standings: dict[str, Standing] = field(default_factory=dict)

    def get(self, key: str) -> Standing:
        if key not in self.standings:
            self.standings[key] = Standing(key)
        return self.standings[key]

    def record(self, models: list[str], choice: str | None) -> None:
        """One vote on a row with these models: choice is the winner's key,
        "tie" or "all_bad"."""
        models = list(dict.fromkeys(models))
        if len(models) < 1:
            return
        if choice == "all_bad":
            for m in models:
                self.get(m).all_bad += 1
            return
        before = {m: self.get(m).rating for m in models}
        delta = {m: 0.0 for m in models}
        if choice == "tie":
            for i, a in enumerate(models):
                for b in models[i + 1:]:
                    d = K * (0.5 - expected(before[a], before[b]))
                    delta[a] += d
                    delta[b] -= d
            for m in models:
                self.get(m).ties += 1
        else:
            if choice not in models:
                return
            for other in models:
                if other == choice:
                    continue
                d = K * (1.0 - expected(before[choice], before[other]))
                delta[choice] += d
                delta[other] -= d
                self.get(other).losses += 1
            self.get(choice).wins += 1
        if len(models) > 1:
            for m in models:
                s = self.get(m)
                s.rating += delta[m]
                s.votes += 1

    def ranked(self) -> list[Standing]:
        return sorted(self.standings.values(), key=lambda s: (-s.rating, -s.wins, s.key))


def build(votes) -> Board:
    """votes: Vote rows (with row and cell), in any order; their row's cells
    prefetched as row.cells."""
    board = Board()
    for v in sorted(votes, key=lambda v: (v.created, v.pk)):
        cells = list(v.row.cells.all())
        models = [f"{c.provider}:{c.model}" for c in cells]
        if v.choice == "cell":
            choice = f"{v.cell.provider}:{v.cell.model}" if v.cell else None
        else:
            choice = v.choice
        board.record(models, choice)
    return board
