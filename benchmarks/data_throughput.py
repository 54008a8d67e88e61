"""Images per second through each dataset source, the numbers that bound how fast FID caches of reals fill.

    python benchmarks/data_throughput.py [--n 2000] [--resolutions 32,64,256] [--workers 0]
                                         [--csv reports/data_throughput.csv]

For each resolution: rendering `shapes` directly (with `render_ref_ms`, the full-frame supersampling
reference the renderer must equal, to show what the bounding-box shortcut saves), exporting it as a zip,
and reading it back as a zip, a folder and an uncompressed .npz (memory-mapped) through `loader()`.
CPU seconds are reported beside wall seconds because the machine may be shared.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _table import write_csv

FIELDS = ["source", "resolution", "n", "workers", "wall_s", "cpu_s", "images_per_s", "note"]


def timed(fn) -> tuple[float, float]:
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def reference_render_ms(resolution: int, count: int = 20) -> float:
    """Mean ms per image of the full-frame reference renderer (tests/test_shapes.py's definition)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_shapes import reference_render

    from ganbench.data.shapes import sample_attributes

    attrs = [sample_attributes(0, i) for i in range(count)]
    wall, _ = timed(lambda: [reference_render(a, resolution) for a in attrs])
    return 1000 * wall / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--resolutions", default="32,64,256")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--csv", default="reports/data_throughput.csv")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from ganbench.data import ShapesDataset, open_dataset
    from ganbench.data.export import export_dataset

    rows = []

    def add(source: str, res: int, n: int, wall: float, cpu: float, note: str = "") -> None:
        rows.append({"source": source, "resolution": res, "n": n, "workers": args.workers, "wall_s": round(wall, 3),
                     "cpu_s": round(cpu, 3), "images_per_s": round(n / wall, 1), "note": note})
        print(f"{source:>12} {res:>5} {n:>6} {wall:8.2f}s {cpu:8.2f}s cpu {n / wall:10.1f} img/s  {note}", flush=True)

    def drain(ds) -> None:
        for _ in ds.loader(batch_size=64, num_workers=args.workers):
            pass

    print(f"{'source':>12} {'res':>5} {'n':>6} {'wall':>9} {'cpu':>13} {'rate':>14}")
    for res in (int(r) for r in args.resolutions.split(",")):
        n = args.n if res <= 64 else max(args.n // 8, 64)
        shapes = ShapesDataset(n=n, resolution=res)
        add("shapes", res, n, *timed(lambda: drain(shapes)),
            note=f"render_ref_ms={reference_render_ms(res):.2f} vs {1000 * timed(lambda: [shapes.image(i) for i in range(20)])[0] / 20:.2f}")
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            add("export-zip", res, n, *timed(lambda: export_dataset(shapes, tmp / "s.zip")))
            export_dataset(shapes, tmp / "folder")
            np.savez(tmp / "s.npz", images=np.stack([shapes.image(i) for i in range(n)]))
            for source, spec in (("zip", "s.zip"), ("folder", "folder"), ("npz", "s.npz")):
                ds = open_dataset(str(tmp / spec))
                open_wall, _ = timed(lambda: open_dataset(str(tmp / spec)).identity)
                add(source, res, n, *timed(lambda: drain(ds)), note=f"open+identity {1000 * open_wall:.1f} ms")

    write_csv(rows, FIELDS, args.csv)


if __name__ == "__main__":
    main()
