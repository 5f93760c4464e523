"""Run outputs: learning-curve plots (metrics files are written by the command line)."""
from __future__ import annotations


def plot_curve(steps, returns, path: str, title: str = "") -> None:
    """Writes a learning curve (evaluation return against environment steps) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, returns, marker="o", markersize=3)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean evaluation return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
