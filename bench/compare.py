"""Print, per benchmark group, each entry's median and its ratio to the peer's median.

Usage: python bench/compare.py RESULTS.json
(RESULTS.json from ``pytest bench/... --benchmark-only --benchmark-json=RESULTS.json``.)
The peer of a group is its entry whose name does not contain "recforge". A group whose entries
all record how many users they served (``extra_info["users"]``: bench_personal_rank.py's, which
time the peers on fewer users) is compared per user.
"""

import json
import sys
from collections import defaultdict


def main(path: str) -> None:
    with open(path) as f:
        benchmarks = json.load(f)["benchmarks"]
    groups = defaultdict(list)
    for b in benchmarks:
        groups[b["group"] or "(none)"].append(
            (b["name"], b["stats"]["median"], b.get("extra_info", {}))
        )
    for group, rows in sorted(groups.items()):
        per_user = all("users" in extra for _, _, extra in rows)
        if per_user:
            rows = [(name, median / extra["users"], extra) for name, median, extra in rows]
        unit, digits = ("ms/user", 3) if per_user else ("ms", 2)
        peers = [median for name, median, _ in rows if "recforge" not in name]
        peer = min(peers) if peers else None
        print(f"[{group}]")
        for name, median, extra in sorted(rows, key=lambda r: r[1]):
            ratio = f"  peer/ours = {peer / median:6.2f}x" if peer and "recforge" in name else ""
            cores = "".join(f"  {k}={v:.2f}" for k, v in extra.items() if k.endswith("cores_used"))
            print(
                f"  {name:<55} median {median * 1e3:10.{digits}f} {unit}{ratio}{cores}{_where(extra)}"
            )


def _where(extra: dict) -> str:
    """``  far`` after an entry that ran with the two CPUs far apart (bench_busy.py's reading)."""
    return "  far" if extra.get("cores_far_apart") else ""


if __name__ == "__main__":
    main(sys.argv[1])
