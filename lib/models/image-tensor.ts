// Image batches for the models: a region of an RGB image resized bilinearly straight into a slot of a
// preallocated NCHW float tensor (values 0–1), so building a batch allocates nothing per sample.

import type { Box, RasterImage } from '../program/image';

/**
 * Writes `region` (source pixels `[x1, y1, x2, y2]`, x2/y2 exclusive; pixels outside the image are black, as in
 * PIL's crop) of `image`, resized to side × side, into `out` at sample `index` (3 · side² floats per sample).
 */
export function writeImageRegion(
  image: RasterImage,
  region: Box | null,
  side: number,
  out: Float32Array,
  index: number,
): void {
  const [x1, y1, x2, y2] = region ?? [0, 0, image.width, image.height];
  const channels = image.channels;
  const { width, height, data } = image;
  const plane = side * side;
  const base = index * 3 * plane;
  const scaleX = (x2 - x1) / side;
  const scaleY = (y2 - y1) / side;
  for (let oy = 0; oy < side; oy++) {
    // Sample-centre mapping (align_corners = false), clamped inside the region as bilinear resizers do.
    const sy = Math.min(Math.max(y1 + (oy + 0.5) * scaleY - 0.5, y1), y2 - 1);
    const iy = Math.floor(sy);
    const fy = sy - iy;
    const iy1 = Math.min(iy + 1, y2 - 1);
    for (let ox = 0; ox < side; ox++) {
      const sx = Math.min(Math.max(x1 + (ox + 0.5) * scaleX - 0.5, x1), x2 - 1);
      const ix = Math.floor(sx);
      const fx = sx - ix;
      const ix1 = Math.min(ix + 1, x2 - 1);
      const w00 = (1 - fx) * (1 - fy);
      const w01 = fx * (1 - fy);
      const w10 = (1 - fx) * fy;
      const w11 = fx * fy;
      const o00 = ix >= 0 && ix < width && iy >= 0 && iy < height ? (iy * width + ix) * channels : -1;
      const o01 = ix1 >= 0 && ix1 < width && iy >= 0 && iy < height ? (iy * width + ix1) * channels : -1;
      const o10 = ix >= 0 && ix < width && iy1 >= 0 && iy1 < height ? (iy1 * width + ix) * channels : -1;
      const o11 = ix1 >= 0 && ix1 < width && iy1 >= 0 && iy1 < height ? (iy1 * width + ix1) * channels : -1;
      const target = base + oy * side + ox;
      for (let c = 0; c < 3; c++) {
        const channel = channels === 1 ? 0 : c;
        const value =
          (o00 >= 0 ? data[o00 + channel] * w00 : 0) +
          (o01 >= 0 ? data[o01 + channel] * w01 : 0) +
          (o10 >= 0 ? data[o10 + channel] * w10 : 0) +
          (o11 >= 0 ? data[o11 + channel] * w11 : 0);
        out[target + c * plane] = value / 255;
      }
    }
  }
}

/** The source image and region an image argument shows (crops know their region in their root image). */
export function sourceRegion(image: RasterImage): { source: RasterImage; region: Box | null } {
  return { source: image.root ?? image, region: image.region ?? null };
}
