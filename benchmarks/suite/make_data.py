"""Datasets unlike the four development ones, one per kind of data users bring, made
deterministically from a seed (nothing downloaded), as class folders with train/ and val/.

    python benchmarks/suite/make_data.py KIND OUT [--seed 0]
    python benchmarks/suite/make_data.py all OUT          every kind, in OUT/KIND

Kinds (what a recipe made on photos of objects may get wrong on each):
  mirror      the letters b, d, p, q in the fonts matplotlib ships, 64 px, 400 a class: a
              mirror image is another class (a horizontal flip turns b into d)
  details     128 px noise textures whose class is a 5 px mark (+, x, o, -) somewhere in
              them: at a small image size the mark is gone
  imbalance   10 classes of coloured shapes in 5 look-alike pairs (one shape, colours ~50
              levels apart), 400 images for the first down to 20 for the last (20:1):
              the rarest class's look-alike is the commonest, 64 px
  grayscale   8 classes of shapes drawn in grey on grey textures, saved as L-mode PNGs
  tiny        16x16 icons of 10 classes
  many        60 classes (shape x colour) with 15 training images each, 48 px
  large       4 classes of 512x384 textures (stripes at four angles)
HELD_OUT names the kinds kept out of every tuning decision: report them apart.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

KINDS = ("mirror", "details", "imbalance", "grayscale", "tiny", "many", "large")
HELD_OUT = ("details", "many")  # never used to choose a rule, a constant or a default
VAL_SHARE = 0.25
SHAPES = ("circle", "square", "triangle", "cross", "ring", "bar", "diamond", "star")
COLOURS = ((220, 40, 40), (40, 160, 60), (40, 80, 220), (230, 200, 40), (160, 60, 200),
           (40, 190, 200), (240, 130, 30), (120, 120, 120))


def _fonts() -> list[Path]:
    import matplotlib

    d = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf"
    skip = ("cmex", "cmsy", "STIXSiz", "STIXNonUni", "LastResort")
    return sorted(p for p in d.glob("*.ttf") if not p.name.startswith(skip))


def _noise(rng: np.random.Generator, h: int, w: int, grey: bool = False) -> Image.Image:
    base = rng.integers(60, 200, 1 if grey else 3)
    a = np.clip(base + rng.normal(0, 25, (h, w, 1 if grey else 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(a[..., 0] if grey else a, "L" if grey else "RGB")


def _shape(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float,
           fill: tuple | int, rng: np.random.Generator) -> None:
    a = rng.uniform(0, math.tau)
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif kind == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(2, int(r / 3)))
    elif kind == "bar":
        draw.line([cx - r * math.cos(a), cy - r * math.sin(a), cx + r * math.cos(a),
                   cy + r * math.sin(a)], fill=fill, width=max(2, int(r / 2.5)))
    elif kind == "cross":
        for t in (a, a + math.pi / 2):
            draw.line([cx - r * math.cos(t), cy - r * math.sin(t), cx + r * math.cos(t),
                       cy + r * math.sin(t)], fill=fill, width=max(2, int(r / 3)))
    else:
        n = {"square": 4, "triangle": 3, "diamond": 4, "star": 10}[kind]
        off = a + (math.pi / 4 if kind == "diamond" else 0)
        radius = [r if kind != "star" or i % 2 == 0 else r / 2.2 for i in range(n)]
        pts = [(cx + radius[i] * math.cos(off + i * math.tau / n),
                cy + radius[i] * math.sin(off + i * math.tau / n)) for i in range(n)]
        draw.polygon(pts, fill=fill)


def _letter(rng: np.random.Generator, c: int, fonts: list[Path]) -> Image.Image:
    im = _noise(rng, 64, 64)
    font = ImageFont.truetype(str(fonts[rng.integers(len(fonts))]), int(rng.integers(30, 46)))
    ink = tuple(int(v) for v in rng.integers(0, 60, 3))
    d = ImageDraw.Draw(im)
    d.text((32 + rng.normal(0, 4), 32 + rng.normal(0, 4)), "bdpq"[c], font=font, fill=ink,
           anchor="mm")
    return im.rotate(rng.uniform(-10, 10), resample=Image.BILINEAR, fillcolor=(128, 128, 128))


def _detail(rng: np.random.Generator, c: int) -> Image.Image:
    im = _noise(rng, 128, 128)
    d = ImageDraw.Draw(im)
    for _ in range(6):  # distractors: blobs of the mark's size and colour
        x, y = rng.integers(8, 120, 2)
        d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(20, 20, 20))
    x, y = (int(v) for v in rng.integers(10, 118, 2))
    ink = (250, 250, 250)
    if c in (0, 1):  # + or x
        s = 3
        pts = [((x - s, y), (x + s, y), (x, y - s), (x, y + s)),
               ((x - s, y - s), (x + s, y + s), (x - s, y + s), (x + s, y - s))][c]
        d.line([pts[0], pts[1]], fill=ink, width=1)
        d.line([pts[2], pts[3]], fill=ink, width=1)
    elif c == 2:
        d.ellipse([x - 3, y - 3, x + 3, y + 3], outline=ink, width=1)
    else:
        d.line([(x - 3, y), (x + 3, y)], fill=ink, width=1)
    return im


def _shaped(rng: np.random.Generator, size: int, shape: str, colour: tuple | int,
            grey: bool = False) -> Image.Image:
    im = _noise(rng, size, size, grey)
    r = size * rng.uniform(0.22, 0.34)
    cx, cy = (size / 2 + rng.normal(0, size / 12) for _ in range(2))
    fill = colour if not grey else int(colour)
    _shape(ImageDraw.Draw(im), shape, cx, cy, r, fill, rng)
    return im


def _stripes(rng: np.random.Generator, c: int) -> Image.Image:
    h, w = 384, 512
    yy, xx = np.mgrid[0:h, 0:w]
    ang = c * math.pi / 4 + rng.normal(0, 0.06)
    period = rng.uniform(18, 40)
    wave = np.sin((xx * math.cos(ang) + yy * math.sin(ang)) * math.tau / period)
    tint = rng.integers(40, 220, 3)
    a = 128 + 60 * wave[..., None] * (tint / 255) + rng.normal(0, 20, (h, w, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


Draw = Callable[[np.random.Generator, int], Image.Image]


def plan(kind: str) -> tuple[list[str], list[int], Draw]:
    """(class names, images per class, a function drawing one image of a class)."""
    if kind == "mirror":
        fonts = _fonts()
        return list("bdpq"), [400] * 4, lambda rng, c: _letter(rng, c, fonts)
    if kind == "details":
        return ["plus", "cross", "ring", "dash"], [300] * 4, _detail
    if kind == "imbalance":
        counts = [int(round(400 * (20 / 400) ** (i / 9))) for i in range(10)]
        return ([f"{SHAPES[min(c, 9 - c)]}_{'a' if c < 5 else 'b'}" for c in range(10)],
                counts, _look_alike)
    if kind == "grayscale":
        return list(SHAPES), [150] * 8, lambda rng, c: _shaped(rng, 64, SHAPES[c],
                                                               int(rng.integers(0, 40)), True)
    if kind == "tiny":
        return ([*SHAPES, "circle_blue", "square_red"], [200] * 10,
                lambda rng, c: _shaped(rng, 16, (SHAPES * 2)[c],
                                       COLOURS[(c * 3) % 8] if c < 8 else COLOURS[2 - c % 2 * 2]))
    if kind == "many":
        names = [f"{s}_{i}" for s in SHAPES[:6] for i in range(10)]
        return names, [20] * 60, lambda rng, c: _shaped(rng, 48, SHAPES[c // 10],
                                                          _tone(c % 10))
    if kind == "large":
        return ["deg0", "deg45", "deg90", "deg135"], [60] * 4, _stripes
    raise SystemExit(f"{kind}: use one of {', '.join(KINDS)} or all")


def _look_alike(rng: np.random.Generator, c: int) -> Image.Image:
    """Classes c and 9 - c share a shape and differ by a colour shift of ~50 levels that
    each image's jitter (15 levels a channel) blurs: told apart mostly, not always, so
    that a model fitted to the counts gives the rare one of each pair away."""
    pair = min(c, 9 - c)
    shift = np.array([25, -25, 0]) * (1 if c < 5 else -1)
    tone = np.clip(np.array(COLOURS[pair]) + shift + rng.normal(0, 15, 3), 0, 255)
    return _shaped(rng, 64, SHAPES[pair], tuple(int(v) for v in tone))


def _tone(i: int) -> tuple[int, int, int]:
    h = i / 10 * math.tau
    return tuple(int(128 + 110 * math.cos(h + k * math.tau / 3)) for k in range(3))


def make(kind: str, out: Path, seed: int = 0) -> dict[str, int]:
    """Write OUT/train/<class>/ and OUT/val/<class>/ (VAL_SHARE of each class); return the
    training counts."""
    classes, counts, draw = plan(kind)
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    made = {}
    for c, (name, n) in enumerate(zip(classes, counts)):
        n_val = max(1, int(round(n * VAL_SHARE)))
        for part, k in (("train", n - n_val), ("val", n_val)):
            d = out / part / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(k):
                draw(rng, c).save(d / f"{name}_{i:04d}.png")
        made[name] = n - n_val
    return made


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=[*KINDS, "all"])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    for kind in KINDS if a.kind == "all" else (a.kind,):
        made = make(kind, a.out / kind if a.kind == "all" else a.out, a.seed)
        print(f"{kind}: {len(made)} classes, {sum(made.values())} training images "
              f"({min(made.values())}-{max(made.values())} a class)"
              f"{' (held out)' if kind in HELD_OUT else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
