"""What the data rules read on each dataset, and what they would change in the default
space: where a rule does not fire, `tune` runs exactly as it did before the rule.

    python benchmarks/data_rules.py [--datasets digits,cifar10-small,clothing,flowers,
        suite:mirror,...] [--out FILE]

Each dataset is decoded at 32 px (in its own cache under the work folder) and read by
`hyperfcn.data.traits.read_traits`, as `tune` reads it after decoding. Figure: per dataset,
what the mirror and rotation tests found, and the flips and rotations the search keeps.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
from common import data_args, emit  # noqa: E402

from hyperfcn.data.prepare import prepare  # noqa: E402
from hyperfcn.data.traits import read_traits  # noqa: E402
from hyperfcn.options import TuneOptions  # noqa: E402
from hyperfcn.space_setup import adapt_to_data, resolve_space, rotation_degrees  # noqa: E402

DEFAULT = "digits,cifar10-small,clothing,flowers,suite:mirror,suite:tiny,suite:grayscale," \
          "suite:imbalance,suite:large"


def read(name: str, work: Path) -> dict:
    args = data_args(name, work)
    val = Path(args[2]) if len(args) > 2 else None
    data, _ = prepare(args[0], [32], val_dir=val, seed=0, cache_dir=work / "cache")
    space = resolve_space(TuneOptions(data=Path(args[0])))
    t0 = time.time()
    traits = read_traits(data.train[32], data.classes, seed=0,
                         degrees=rotation_degrees(space))
    seconds = time.time() - t0
    space, said = adapt_to_data(space, traits)
    return {"dataset": name, "traits": traits.to_dict(), "read_seconds": round(seconds, 3),
            "flips_searched": space.values_of("flip"),
            "rotation_searched": space.values_of("rotation"), "said": said}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default=DEFAULT)
    ap.add_argument("--out")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hyperfcn-rules-"))
    rows = [read(name, work) for name in a.datasets.split(",")]
    for r in rows:
        print(r, flush=True)
    fired = [r["dataset"] for r in rows if r["said"]]
    emit({"benchmark": "data_rules", "rows": rows,
          "figure": f"the mirror and rotation tests change the space on "
                    f"{', '.join(fired) or 'none'} of "
                    f"{len(rows)} datasets; elsewhere the search runs as before (slowest "
                    f"read {max(r['read_seconds'] for r in rows):.2f} s)"}, a.out)


if __name__ == "__main__":
    main()
