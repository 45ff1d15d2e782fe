"""Write scikit-learn's bundled handwritten digits (1,797 8x8 images) as a class-folder
dataset of 32x32 PNGs: a demo that needs no download.

    python examples/make_digits.py data/digits
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def main(out: str) -> None:
    digits = load_digits()
    root = Path(out)
    for i, (img, label) in enumerate(zip(digits.images, digits.target)):
        d = root / f"digit_{label}"
        d.mkdir(parents=True, exist_ok=True)
        a = (img * (255.0 / 16.0)).astype(np.uint8)
        Image.fromarray(a, "L").resize((32, 32), Image.Resampling.BILINEAR).save(
            d / f"{i:04d}.png")
    print(f"wrote {len(digits.target)} images in 10 class folders under {root}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/digits")
