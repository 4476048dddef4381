"""PNG figures of the consistency simulation (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLOURS = {
    "azsidecar": "#2b8a3e",
    "azsidecar-tuned": "#74b816",
    "mint-in-run": "#c92a2a",
    "mint+sleep60": "#e8590c",
    "azsidecar-certificate": "#1971c2",
    "upload-cert-in-run": "#862e9c",
    "azsidecar-federated": "#0c8599",
    "create-fic-in-run": "#e64980",
}


def failure_rates(consistency: dict[str, Any], path: Path) -> Path:
    """Grouped bars: failed sign-ins per strategy and lag profile, log scale."""
    table = consistency["results"]
    strategies = list(table)
    profiles = list(next(iter(table.values())))
    width = 0.8 / len(strategies)
    fig, ax = plt.subplots(figsize=(9, 4.8))
    floor = 1e-7
    for s_index, strategy in enumerate(strategies):
        for p_index, profile in enumerate(profiles):
            result = table[strategy][profile]
            x = p_index + (s_index - (len(strategies) - 1) / 2) * width
            rate = result["failure_rate"]
            ax.bar(
                x,
                max(rate, floor),
                width,
                color=COLOURS.get(strategy, "grey"),
                label=strategy if p_index == 0 else None,
                alpha=1.0 if rate else 0.25,
            )
            if rate:
                text = f"{100 * rate:.2g}%"
                ax.text(x, rate * 1.3, text, ha="center", va="bottom", fontsize=7)
            else:
                text = f"0 of {result['runs']:,}"
                ax.text(x, floor * 2, text, ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_yscale("log")
    ax.set_ylim(floor, 3)
    ax.set_xticks(range(len(profiles)), profiles)
    ax.set_ylabel("runs failing to authenticate (log)")
    params = consistency["parameters"]
    ax.set_title(
        f"AADSTS7000215 / 700027 / 70021 per strategy: {params['integrations']} integrations, "
        f"{params['days']:g} days, a run per minute"
    )
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.07), ncols=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ready_age(consistency: dict[str, Any], path: Path) -> Path:
    """Histogram of the handed-out secret's age at use, per profile; minting ages marked."""
    table = consistency["results"]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for profile, result in table["azsidecar"].items():
        histogram = result["age_minutes"].get("histogram", {})
        if not histogram:
            continue
        total = sum(histogram.values())
        hours: dict[int, int] = {}
        for minute, count in histogram.items():
            hours[int(minute) // 10] = hours.get(int(minute) // 10, 0) + count
        xs = sorted(hours)
        ax.step([x / 6 for x in xs], [hours[x] / total for x in xs], where="post", label=profile)
    ax.axvline(0, color=COLOURS["mint-in-run"], linestyle="--", label="mint-in-run (0 s)")
    ax.axvline(1 / 60, color=COLOURS["mint+sleep60"], linestyle=":", label="mint+sleep60 (60 s)")
    ax.set_xlabel("age of the secret when a run signs in (hours, 10-minute bins)")
    ax.set_ylabel("share of runs")
    ax.set_title("Age of the secret azsidecar hands a run, per lag profile")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw(results: dict[str, Any], out: Path) -> list[Path]:
    consistency = results.get("consistency")
    if not consistency:
        return []
    out.mkdir(parents=True, exist_ok=True)
    return [
        failure_rates(consistency, out / "consistency_failures.png"),
        ready_age(consistency, out / "consistency_age.png"),
    ]
