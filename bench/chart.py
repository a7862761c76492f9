"""The chart in docs/performance.md, drawn from bench/results/relay.json."""

from __future__ import annotations

import json
import sys

from bench.common import RESULTS, ROOT

SIDES = [
    ("baseline", "bare relay"),
    ("embedded", "Lykta\nembedded"),
    ("redis", "Lykta\non Redis"),
    # A reference (bench/redis_relay_app.py); results from before it was measured lack it.
    ("redis-relay", "reference: bare\nrelay across Redis"),
]


def main() -> int:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("chart: install the bench extra first: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    relay = json.loads((RESULTS / "relay.json").read_text())["summary"]
    sides = [(side, label) for side, label in SIDES if side in relay]
    names = [label for _, label in sides]
    colours = ["#888888", "#2a6f97", "#c8553d", "#bbbbbb"][: len(sides)]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    panels = [
        ("saturation_messages_per_second", "messages / s at saturation", "{:,.0f}"),
        ("saturation_cpu_us_per_message", "server CPU µs per message", "{:.1f}"),
        ("p99_ms", "p99 latency (ms), 1,000 conns × 2 msg/s", "{:.1f}"),
    ]
    for axis, (key, title, fmt) in zip(axes, panels, strict=True):
        values = [relay[side][key] for side, _ in sides]
        bars = axis.bar(names, values, color=colours)
        axis.set_title(title, fontsize=10)
        axis.tick_params(axis="x", labelsize=8)
        for bar, value in zip(bars, values, strict=True):
            axis.annotate(
                fmt.format(value),
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    fig.suptitle("Lykta relay benchmark (medians of interleaved rounds, bench/relay.py)")
    fig.tight_layout()
    out = ROOT / "docs" / "performance.png"
    fig.savefig(out, dpi=110)
    print(f"chart: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
