"""Augmentation as one Keras layer, active only in training, fast on every backend.

Keras' RandomRotation samples with map_coordinates, which under JAX on a GPU cost 22x the
network it fed. Here flip, rotation, zoom and translation are fused into one affine
transform per image, applied with a single bilinear gather; contrast and brightness are
elementwise. Inputs are images in [0, 255].
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops


def _reflect(c, n):
    """Mirror coordinates into [0, n-1] (like fill_mode='reflect')."""
    period = ops.maximum(2.0 * (n - 1.0), 1.0)
    c = ops.mod(ops.abs(c), period)
    return ops.where(c > n - 1.0, period - c, c)


@keras.saving.register_keras_serializable(package="hyperfcn")
class Augment(keras.layers.Layer):
    def __init__(self, flip: str = "none", rotation: float = 0.0, zoom: float = 0.0,
                 translation: float = 0.0, contrast: float = 0.0, brightness: float = 0.0,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.flip = flip
        self.rotation = float(rotation)
        self.zoom = float(zoom)
        self.translation = float(translation)
        self.contrast = float(contrast)
        self.brightness = float(brightness)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = False

    @property
    def geometric(self) -> bool:
        return self.rotation > 0 or self.zoom > 0 or self.translation > 0

    @property
    def active(self) -> bool:
        return (self.flip != "none" or self.geometric or self.contrast > 0
                or self.brightness > 0)

    def _u(self, b, low, high):
        return keras.random.uniform((b,), low, high, seed=self.seed_generator)

    def _flip_signs(self, b):
        hflip = self.flip in ("horizontal", "horizontal_and_vertical")
        vflip = self.flip in ("vertical", "horizontal_and_vertical")
        one = ops.ones((b,))
        fx = ops.where(self._u(b, 0.0, 1.0) < 0.5, -one, one) if hflip else one
        fy = ops.where(self._u(b, 0.0, 1.0) < 0.5, -one, one) if vflip else one
        return fx, fy

    def _affine(self, images):
        shape = ops.shape(images)
        b, h, w, c = shape[0], shape[1], shape[2], shape[3]
        hf = ops.cast(h, "float32")
        wf = ops.cast(w, "float32")
        fx, fy = self._flip_signs(b)
        zero = ops.zeros((b,))
        theta = (self._u(b, -self.rotation, self.rotation) * (2.0 * math.pi)
                 if self.rotation > 0 else zero)
        scale = (self._u(b, 1.0 - self.zoom, 1.0 + self.zoom) if self.zoom > 0
                 else ops.ones((b,)))
        tx = (self._u(b, -self.translation, self.translation) * wf
              if self.translation > 0 else zero)
        ty = (self._u(b, -self.translation, self.translation) * hf
              if self.translation > 0 else zero)
        cos, sin = ops.cos(theta) * scale, ops.sin(theta) * scale

        ys = ops.arange(h, dtype="float32") - (hf - 1.0) / 2.0
        xs = ops.arange(w, dtype="float32") - (wf - 1.0) / 2.0
        gy = ops.reshape(ys, (1, -1, 1))
        gx = ops.reshape(xs, (1, 1, -1))

        def per(v):
            return ops.reshape(v, (-1, 1, 1))

        ox = gx * per(fx)
        oy = gy * per(fy)
        src_x = per(cos) * ox - per(sin) * oy + (wf - 1.0) / 2.0 + per(tx)
        src_y = per(sin) * ox + per(cos) * oy + (hf - 1.0) / 2.0 + per(ty)
        src_x = _reflect(src_x, wf)
        src_y = _reflect(src_y, hf)

        x0 = ops.floor(src_x)
        y0 = ops.floor(src_y)
        wx = ops.expand_dims(src_x - x0, -1)
        wy = ops.expand_dims(src_y - y0, -1)
        x0i = ops.cast(x0, "int32")
        y0i = ops.cast(y0, "int32")
        x1i = ops.minimum(x0i + 1, ops.cast(w, "int32") - 1)
        y1i = ops.minimum(y0i + 1, ops.cast(h, "int32") - 1)
        base = ops.reshape(ops.arange(b, dtype="int32") * (h * w), (-1, 1, 1))
        flat = ops.reshape(images, (-1, c))
        wi = ops.cast(w, "int32")

        def gather(yi, xi):
            return ops.take(flat, ops.reshape(base + yi * wi + xi, (-1,)), axis=0)

        # One gather of all four corners, then split: fewer kernel launches on a GPU.
        corners = gather(ops.concatenate([y0i, y0i, y1i, y1i], axis=1),
                         ops.concatenate([x0i, x1i, x0i, x1i], axis=1))
        corners = ops.reshape(corners, (b, 4, h, w, c))
        p00, p01, p10, p11 = (corners[:, i] for i in range(4))
        top = p00 + (p01 - p00) * wx
        bottom = p10 + (p11 - p10) * wx
        return top + (bottom - top) * wy

    def _flip_only(self, images):
        b = ops.shape(images)[0]
        fx, fy = self._flip_signs(b)
        if self.flip in ("horizontal", "horizontal_and_vertical"):
            images = ops.where(ops.reshape(fx < 0, (-1, 1, 1, 1)), ops.flip(images, 2), images)
        if self.flip in ("vertical", "horizontal_and_vertical"):
            images = ops.where(ops.reshape(fy < 0, (-1, 1, 1, 1)), ops.flip(images, 1), images)
        return images

    def call(self, images, training=None):
        if not training or not self.active:
            return images
        images = ops.cast(images, "float32")
        if self.geometric:
            images = self._affine(images)
        elif self.flip != "none":
            images = self._flip_only(images)
        b = ops.shape(images)[0]
        if self.contrast > 0:
            k = ops.reshape(self._u(b, 1.0 - self.contrast, 1.0 + self.contrast), (-1, 1, 1, 1))
            mean = ops.mean(images, axis=(1, 2), keepdims=True)
            images = (images - mean) * k + mean
        if self.brightness > 0:
            d = self._u(b, -self.brightness, self.brightness) * 255.0
            images = images + ops.reshape(d, (-1, 1, 1, 1))
        if self.contrast > 0 or self.brightness > 0:
            images = ops.clip(images, 0.0, 255.0)
        return images

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        cfg = super().get_config()
        cfg.update(flip=self.flip, rotation=self.rotation, zoom=self.zoom,
                   translation=self.translation, contrast=self.contrast,
                   brightness=self.brightness, seed=self.seed)
        return cfg


def from_config(cfg, seed: int | None = None) -> Augment:
    """The augmentation a ModelConfig asks for."""
    return Augment(
        flip=cfg.flip,
        rotation=cfg.rotation_factor if cfg.rotation else 0.0,
        zoom=cfg.zoom_factor if cfg.zoom else 0.0,
        translation=cfg.translation_factor if cfg.translation else 0.0,
        contrast=cfg.contrast_factor if cfg.contrast else 0.0,
        brightness=cfg.brightness_factor if cfg.brightness else 0.0,
        seed=seed, name="augment")


def preview_grid(cfg, images: np.ndarray, copies: int = 5, seed: int = 0,
                 gap: int = 2) -> np.ndarray:
    """What the policy does to real images: one row per image, the original first, then
    `copies` draws of the training-time augmentation. uint8 (H, W, 3)."""
    n, h, w, _ = images.shape
    layer = from_config(cfg, seed)
    x = np.asarray(images, np.float32)
    cols = [x] + [np.asarray(ops.convert_to_numpy(layer(x, training=True)))
                  for _ in range(copies)]
    grid = np.full((n * (h + gap) - gap, len(cols) * (w + gap) - gap, 3), 255, np.uint8)
    for c, col in enumerate(cols):
        for r in range(n):
            grid[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = (
                np.clip(col[r], 0, 255).astype(np.uint8))
    return grid
