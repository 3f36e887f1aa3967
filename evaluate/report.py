"""results.json, results.md and a chart that places the run among published results, each row with its protocol."""

from __future__ import annotations

import json
from pathlib import Path

from aurora_core.files import write_text

# Published 5-shot results, each with the protocol its authors used.
PUBLISHED = [
    ("Aurora (paper)", "LLaMA-Factory: chat template, shuffled shots", {"ceval": 51.9, "mmlu": 67.74, "cmmlu": 49.69}),
    ("Mixtral-8x7B-Instruct (ymcui/Chinese-Mixtral)", "Chinese-Mixtral's harness; C-Eval val",
     {"ceval": 54.0, "mmlu": 70.2, "cmmlu": 51.6}),
]


def write_results(results: dict, out: Path, model_label: str) -> dict[str, Path]:
    paths = {"json": out / "results.json", "md": out / "results.md", "png": out / "results.png"}
    write_text(paths["json"], json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    write_text(paths["md"], markdown(results, model_label))
    chart(results, paths["png"], model_label)
    return paths


def table(results: dict, model_label: str) -> str:
    lines = ["| benchmark | questions | overall | other average | natural candidates | protocol |",
             "|---|---:|---:|---:|---:|---|"]
    for b in results["benchmarks"].values():
        own = "over subjects" if b["average"] == "subjects" else "over questions"
        other = "over questions" if b["average"] == "subjects" else "over subjects"
        lines.append(f"| {b['label']} ({model_label}) | {b['questions']:,} | {b['overall']:.2f} ({own}) | "
                     f"{b['overall_other']:.2f} ({other}) | {b['overall_natural_candidates']:.2f} | {b['protocol']} |")
    return "\n".join(lines)


def markdown(results: dict, model_label: str) -> str:
    lines = [f"# aurora-eval: {model_label}", "", table(results, model_label), ""]
    for name, protocol, scores in PUBLISHED:
        lines.append(f"- {name}: " + ", ".join(f"{k} {v}" for k, v in scores.items()) + f" ({protocol})")
    for b in results["benchmarks"].values():
        lines += ["", f"## {b['label']}: categories", "", "| category | accuracy |", "|---|---:|"]
        lines += [f"| {c} | {v:.2f} |" for c, v in b["categories"].items()]
        lines += ["", f"## {b['label']}: subjects", "", "| subject | name | questions | accuracy | fewest shots |",
                  "|---|---|---:|---:|---:|"]
        lines += [f"| {k} | {v['name']} | {v['n']} | {v['acc']:.2f} | {v['shots_min']} |" for k, v in b["subjects"].items()]
    return "\n".join(lines) + "\n"


def chart(results: dict, png: Path, model_label: str) -> None:
    from aurora_core.charts import pyplot

    plt = pyplot()
    benches = [b for b in ("ceval", "mmlu", "cmmlu") if b in results["benchmarks"]]
    rows = [(f"{model_label} (this run)", {b: results["benchmarks"][b]["overall"] for b in benches})]
    rows += [(f"{name}\n[{protocol}]", scores) for name, protocol, scores in PUBLISHED]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(rows)
    for i, (label, scores) in enumerate(rows):
        xs = [j + i * width for j in range(len(benches))]
        bars = ax.bar(xs, [scores.get(b, 0) for b in benches], width, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks([j + width * (len(rows) - 1) / 2 for j in range(len(benches))])
    ax.set_xticklabels([results["benchmarks"][b]["label"] for b in benches])
    ax.set_ylabel("accuracy (%), 5-shot")
    ax.set_ylim(0, 100)
    ax.axhline(25, color="grey", lw=0.8, ls="--")
    ax.text(len(benches) - 0.6, 26, "chance (25%)", fontsize=8, color="grey")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("aurora-eval: this run among published results (each with its protocol)")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
