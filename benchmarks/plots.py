"""PNG plots of a benchmark run (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

STYLE = {"rayparallel": ("rayparallel", "o-"), "ray": ("raw Ray", "s--"),
         "ipyparallel": ("ipyparallel", "^:")}


def draw(payload: dict[str, Any], folder: str | Path) -> list[Path]:
    """Draw the scaling plots and the workload ratios of ``payload`` into ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sizes, results = payload["sizes"], payload["results"]
    sessions = {s: r for s, r in results.items() if isinstance(r, dict)}
    ks = sizes["scaling_engines"]

    fig, (ax_rt, ax_lb, ax_push) = plt.subplots(1, 3, figsize=(15, 4.2))
    for system, session in sessions.items():
        label, fmt = STYLE[system]
        scaling = session["scaling"]
        ax_rt.plot(ks, [scaling[f"apply_{k}"]["median_ms"] for k in ks], fmt, label=label)
        ax_lb.plot(ks, [sizes["scaling_items"] / scaling[f"lb_{k}"]["median_ms"] * 1e3
                        for k in ks], fmt, label=label)
        mbs = sizes["push_sizes_mb"]
        ax_push.plot(mbs, [session["push_sizes"][f"push_{mb}MB"]["median_ms"] for mb in mbs],
                     fmt, label=label)
    ax_rt.set(title="apply round trip on k engines", xlabel="engines", ylabel="ms (median)",
              xticks=ks)
    ax_lb.set(title=f"load-balanced map, {sizes['scaling_items']:,} tiny items, chunksize 10",
              xlabel="engines", ylabel="items / s", xticks=ks)
    ax_push.set(title=f"push an array to {payload['engines']} engines", xlabel="MB",
                ylabel="ms (median)", xscale="log", yscale="log")
    for ax in (ax_rt, ax_lb, ax_push):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(payload["machine"], fontsize=9)
    fig.tight_layout()
    scaling_png = folder / "bench_scaling.png"
    fig.savefig(scaling_png, dpi=90)
    plt.close(fig)

    paths = [scaling_png]
    rp = sessions.get("rayparallel")
    if rp is not None:
        paths.append(_ratios(plt, payload, rp, sessions, folder))
    return paths


def _ratios(plt: Any, payload: dict, rp: dict, sessions: dict, folder: Path) -> Path:
    """Horizontal bars: rayparallel's time over each other system's, per workload."""
    keys = ["cold_start", *rp["main"]]
    labels = ["cold start", *(v["label"] for v in rp["main"].values())]

    def ms(session: dict, key: str) -> float:
        return session["cold_start_ms"] if key == "cold_start" else \
            session["main"][key]["median_ms"]

    others = [s for s in ("ray", "ipyparallel") if s in sessions]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(keys) + 1.5))
    height = 0.8 / max(1, len(others))
    for i, system in enumerate(others):
        ratios = [ms(rp, k) / ms(sessions[system], k) for k in keys]
        ax.barh([y + i * height for y in range(len(keys))], ratios, height,
                label=f"rayparallel / {STYLE[system][0]}")
    ax.axvline(1, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks([y + height * (len(others) - 1) / 2 for y in range(len(keys))], labels)
    ax.invert_yaxis()
    ax.set_xlabel("time ratio (log scale; < 1: rayparallel is faster)")
    ax.set_title(f"{payload['engines']} engines; {payload['machine']}", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    fig.tight_layout()
    path = folder / "bench_ratios.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def draw_many(payload: dict[str, Any], folder: str | Path) -> Path:
    """``bench_many``'s run: start and each workload against the number of engines, for
    rayparallel and raw Ray (log-log; a dotted line shows linear growth)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    runs = payload["runs"]
    ks = [r["engines"] for r in runs]
    panels = [("start", "start k engines", "s",
               {"rayparallel": [r["start_s"]["rayparallel"] for r in runs],
                "raw Ray + IPython shell": [r["start_s"]["raw_shell"] for r in runs],
                "ray": [r["start_s"]["raw"] for r in runs]})]
    for w in runs[0]["workloads"]:
        rows = [next(x for x in r["workloads"] if x["key"] == w["key"]) for r in runs]
        panels.append((w["key"], w["workload"], "ms",
                       {"rayparallel": [x["rayparallel_ms"] for x in rows],
                        "ray": [x["raw_ms"] for x in rows]}))
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.4))
    for ax, (key, title, unit, lines) in zip(axes.flat, panels):
        for name, values in lines.items():
            label, fmt = STYLE.get(name, (name, "d-."))
            ax.plot(ks, values, fmt, label=label)
        if key != "lb_map":  # the map's work is fixed; the others' grows with k
            first = lines["rayparallel"]
            ax.plot(ks, [first[0] * k / ks[0] for k in ks], ":", color="grey",
                    label="linear from 1st point")
        ax.set(title=title, xlabel="engines", ylabel=f"{unit} (median)", xscale="log",
               yscale="log", xticks=ks, xticklabels=[str(k) for k in ks])
        plain = FuncFormatter(lambda v, _: f"{v:g}")  # not 10^x
        ax.yaxis.set_major_formatter(plain)
        low, high = ax.get_ylim()
        if high / low < 10:  # less than a decade: label the minor ticks too
            ax.yaxis.set_minor_formatter(plain)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{payload['machine']}; {payload['nodes']} node(s)", fontsize=9)
    fig.tight_layout()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench_many.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
