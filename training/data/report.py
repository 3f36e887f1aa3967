"""report.md in the layout of the paper's Table 1, drops per rule, and two PNG charts."""

from __future__ import annotations

from pathlib import Path

from aurora_core.files import write_text

from .settings import RULES, Report

def write_report(report: Report, folder: Path) -> Path:
    """report.md (the paper's Table 1 layout, drops per rule) and two PNG charts."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["# aurora-data report", "", "## Conversations kept (layout of the Aurora paper's Table 1)", "",
             "| source | single-turn | multi-turn | total | read |", "|---|---:|---:|---:|---:|"]
    for source in report.read:
        s, m = report.kept_single[source], report.kept_multi[source]
        lines.append(f"| {source} | {s:,} | {m:,} | {s + m:,} | {report.read[source]:,} |")
    s, m = sum(report.kept_single.values()), sum(report.kept_multi.values())
    lines += [f"| **total** | {s:,} | {m:,} | {s + m:,} | {sum(report.read.values()):,} |", "",
              "## Dropped, per rule", "", "| rule | dropped | meaning |", "|---|---:|---|"]
    for rule, meaning in RULES.items():
        lines.append(f"| {rule} | {report.dropped[rule]:,} | {meaning} |")
    lines += ["", "## Changed but kept", "", "| change | conversations |", "|---|---:|"]
    lines += [f"| {k} | {v:,} |" for k, v in sorted(report.modified.items())] or ["| (none) | 0 |"]
    lines += ["", f"Split: {report.split['train']:,} train, {report.split['validation']:,} validation.", ""]
    if report.lengths:
        ls = sorted(report.lengths)
        pct = lambda q: ls[min(len(ls) - 1, int(q * len(ls)))]  # noqa: E731
        lines.append(f"Length in {report.length_unit}: median {pct(0.5):,}, p90 {pct(0.9):,}, "
                     f"p99 {pct(0.99):,}, max {ls[-1]:,}.")
    lines += ["", "![categories](categories.png)", "", "![lengths](lengths.png)", ""]
    _charts(report, folder)
    path = folder / "report.md"
    write_text(path, "\n".join(lines))
    return path


def _charts(report: Report, folder: Path) -> None:
    from aurora_core.charts import pyplot

    plt = pyplot()

    top = report.categories.most_common(20)
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.barh([k for k, _ in reversed(top)], [v for _, v in reversed(top)])
    ax.set_xlabel("conversations")
    ax.set_title("Category distribution (top 20)")
    fig.tight_layout()
    fig.savefig(folder / "categories.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.hist(report.lengths or [0], bins=50)
    ax.set_xlabel(f"conversation length ({report.length_unit})")
    ax.set_ylabel("conversations")
    ax.set_title("Length histogram")
    fig.tight_layout()
    fig.savefig(folder / "lengths.png", dpi=100)
    plt.close(fig)
