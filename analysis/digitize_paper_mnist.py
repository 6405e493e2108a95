#!/usr/bin/python3
"""Reads the paper's own MNIST convergence curves off the figures its notebooks saved, so that
docs/dmoe.md can set ours beside them. The paper's repository (mryab/learning-at-home,
experiments/convergence/) keeps no numbers for these runs, only each notebook's last plot: train
loss (left) and validation accuracy against the number of updates (right), evaluated every 1,024
updates on the 10,000 MNIST test digits. This script takes the accuracy line (matplotlib's blue,
#1f77b4) out of the right panel of that PNG and maps its pixels to data through the panel's grid
lines, whose values are the tick labels printed on the figure (NOTEBOOKS below; checked here
against the first and last evaluation, which must land at about 1,024 and the run's last update).
Each column of the line gives the accuracy at that column's number of updates (the mean row of
the line's pixels there); the CSV holds it every 512 updates. Reading error: about 0.005 in
accuracy and 100 updates, more at the sharp turns of a line (the sample is the mean of the
line's pixels in a column).

usage: analysis/digitize_paper_mnist.py NOTEBOOK_DIR [OUT_CSV]
  NOTEBOOK_DIR holds the notebooks of experiments/convergence/ of mryab/learning-at-home (commit
  0523e8840884b122d3b197d4386d096520e15b32 or later); OUT_CSV defaults to
  docs/results/paper_mnist_curves.csv with the columns
  run,experts,trainers,batch,delay_ms,failure,updates,val_accuracy
"""
import base64
import csv
import io
import json
import os
import sys

import numpy as np
from PIL import Image

# notebook -> (run name, experts in all, trainers, batch, delay ms, failure rate, last update,
#              x grid line values, y grid line values (top to bottom)) as printed on the figure.
NOTEBOOKS = {
    "convergence_mnist_64workers_1000ms_seed1337_dmoe64x4.ipynb": (
        "paper_dmoe256_d1000_f0", 256, 64, 4, 1000, 0.0, 20480,
        [2500 * i for i in range(1, 9)], [0.9, 0.8, 0.7, 0.6, 0.5]),
    "convergence_mnist_fail01_64workers_1000ms_seed1338_dmoe1024x4_cpu.ipynb": (
        "paper_dmoe4096_d1000_f10", 4096, 64, 8, 1000, 0.1, 35840,
        [5000 * i for i in range(0, 8)], [0.9, 0.8, 0.7, 0.6, 0.5]),
    "convergence_mnist_64workers_1000ms_seed1337_largeffn.ipynb": (
        "paper_dense_d1000", 0, 64, 4, 1000, 0.0, 20480,
        [2500 * i for i in range(1, 9)], [0.8, 0.6, 0.4, 0.2]),
}
GRID = (191, 191, 191)  # matplotlib's grid line colour in these figures
LINE = np.array([31, 119, 180])
STEP = 512


def last_png(path):
    with open(path) as f:
        nb = json.load(f)
    pngs = [o["data"]["image/png"] for c in nb["cells"] for o in c.get("outputs", [])
            if "image/png" in o.get("data", {})]
    if not pngs:
        sys.exit(f"digitize_paper_mnist.py: {path} holds no figure")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(pngs[-1]))).convert("RGB")).astype(int)


def fit(pixels, values, what):
    """Linear map pixel -> value through the grid lines; they must be evenly spaced."""
    if len(pixels) != len(values):
        sys.exit(f"digitize_paper_mnist.py: found {len(pixels)} {what} grid lines, expected "
                 f"{len(values)}")
    slope, offset = np.polyfit(pixels, values, 1)
    worst = max(abs(slope * p + offset - v) for p, v in zip(pixels, values))
    if worst > 0.02 * abs(values[-1] - values[0]):
        sys.exit(f"digitize_paper_mnist.py: the {what} grid lines are not evenly spaced")
    return lambda p: slope * p + offset


def right_panel(img):
    """Column range of the right panel: right of the image's middle, inside the last spines."""
    h, w, _ = img.shape
    dark = (img.sum(axis=2) < 100).sum(axis=0) > h * 0.5
    right_spine = max(c for c in range(w) if dark[c])
    return w // 2 + 10, right_spine


def digitize(path, spec):
    _, _, _, _, _, _, last, xs, ys = spec
    img = last_png(path)
    c0, c1 = right_panel(img)
    panel = img[:, c0:c1]
    grid = (panel == GRID).all(axis=2)
    cols = [c0 + c for c in np.where(grid.sum(axis=0) > 100)[0]]
    rows = list(np.where(grid.sum(axis=1) > 100)[0])
    x_of, y_of = fit(cols, xs, "x"), fit(rows, ys, "y")
    line = (np.abs(panel - LINE) < 30).all(axis=2)
    points = []
    for c in range(panel.shape[1]):
        r = np.where(line[:, c])[0]
        if len(r):
            points.append((x_of(c0 + c + 0.5), y_of(r.mean())))
    first, end = points[0][0], points[-1][0]
    if abs(first - 1024) > 0.03 * last or abs(end - last) > 0.03 * last:
        sys.exit(f"digitize_paper_mnist.py: {os.path.basename(path)}: the line spans "
                 f"{first:.0f}-{end:.0f} updates, expected about 1024-{last}")
    px, py = zip(*points)
    grid_x = range(STEP * (int(first) // STEP + 1), int(end) + 1, STEP)
    return [(x, float(np.interp(x, px, py))) for x in grid_x]


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    out = sys.argv[2] if len(sys.argv) == 3 else "docs/results/paper_mnist_curves.csv"
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "experts", "trainers", "batch", "delay_ms", "failure", "updates",
                    "val_accuracy"])
        for name, spec in NOTEBOOKS.items():
            curve = digitize(os.path.join(sys.argv[1], name), spec)
            for x, acc in curve:
                w.writerow(list(spec[:6]) + [x, f"{acc:.4f}"])
            print(f"{spec[0]}: {len(curve)} points, {curve[0][1]:.3f} at {curve[0][0]}, "
                  f"{curve[-1][1]:.3f} at {curve[-1][0]}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
