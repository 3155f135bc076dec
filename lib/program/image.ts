// A small raster image type for the interpreter, with crops that remember where they lie in the source image.

import { createHash } from 'node:crypto';
import { SdvpError, argError } from '../errors/sdvp-error';

/** A box `[x1, y1, x2, y2]` in pixels, y pointing down; as in PIL's `crop`, x2 and y2 are exclusive. */
export type Box = readonly [number, number, number, number];

/** Pixels in row-major order with interleaved channels (`data.length === width * height * channels`). */
export interface RasterImage {
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  readonly data: Uint8Array;
  /** Identifies the source image (a path, URL or dataset id); crops inherit it. */
  readonly ref?: string;
  /** Where this image lies in its source image; absent for an uncropped image. */
  readonly region?: Box;
  /** The uncropped source image, on crops. */
  readonly root?: RasterImage;
}

/** A sub-task's view of an image: which source image and which box of it (null: the whole image). */
export interface ImageReference {
  ref: string;
  box: Box | null;
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

/** Creates an image (zero-filled unless `data` is given). */
export function createImage(
  width: number,
  height: number,
  channels = 3,
  data?: Uint8Array,
  ref?: string,
): RasterImage {
  if (!isNonNegativeInteger(width)) throw argError('ERR_SDVP_ARG', 'width', 'a non-negative integer', width);
  if (!isNonNegativeInteger(height))
    throw argError('ERR_SDVP_ARG', 'height', 'a non-negative integer', height);
  if (!isNonNegativeInteger(channels) || channels === 0) {
    throw argError('ERR_SDVP_ARG', 'channels', 'a positive integer', channels);
  }
  const size = width * height * channels;
  if (data !== undefined) {
    if (!(data instanceof Uint8Array)) throw argError('ERR_SDVP_ARG', 'data', 'a Uint8Array', data);
    if (data.length !== size) {
      throw new SdvpError(
        'ERR_SDVP_SHAPE',
        `data must hold width * height * channels = ${size} bytes, but holds ${data.length}.`,
        { field: 'data', expected: String(size), received: String(data.length) },
      );
    }
  }
  if (ref !== undefined && typeof ref !== 'string') throw argError('ERR_SDVP_ARG', 'ref', 'a string', ref);
  const image: RasterImage = { width, height, channels, data: data ?? new Uint8Array(size) };
  return ref === undefined ? image : { ...image, ref };
}

export function isRasterImage(value: unknown): value is RasterImage {
  if (value === null || typeof value !== 'object') return false;
  const image = value as RasterImage;
  return (
    isNonNegativeInteger(image.width) &&
    isNonNegativeInteger(image.height) &&
    isNonNegativeInteger(image.channels) &&
    image.data instanceof Uint8Array &&
    image.data.length === image.width * image.height * image.channels
  );
}

/** Python's round(): halves go to the even neighbour. */
export function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * Crops with PIL's `Image.crop` semantics: the box is rounded, columns x1..x2-1 and rows y1..y2-1 are kept,
 * and pixels outside the image are zero. The crop records its region in the source image.
 */
export function cropImage(image: RasterImage, box: Box): RasterImage {
  if (!isRasterImage(image)) throw argError('ERR_SDVP_ARG', 'image', 'a RasterImage', image);
  if (
    !Array.isArray(box) ||
    box.length !== 4 ||
    !box.every((v) => typeof v === 'number' && Number.isFinite(v))
  ) {
    throw argError('ERR_SDVP_ARG', 'box', 'four finite numbers [x1, y1, x2, y2]', box);
  }
  const [x1, y1, x2, y2] = box.map(roundHalfEven);
  if (x2 < x1)
    throw new SdvpError('ERR_SDVP_RANGE', `Crop box ${JSON.stringify(box)} has x2 < x1.`, { field: 'box' });
  if (y2 < y1)
    throw new SdvpError('ERR_SDVP_RANGE', `Crop box ${JSON.stringify(box)} has y2 < y1.`, { field: 'box' });
  const width = x2 - x1;
  const height = y2 - y1;
  const channels = image.channels;
  const data = new Uint8Array(width * height * channels);
  const columnStart = Math.max(0, x1);
  const columnEnd = Math.min(image.width, x2);
  if (columnEnd > columnStart) {
    for (let y = Math.max(0, y1); y < Math.min(image.height, y2); y++) {
      const source = (y * image.width + columnStart) * channels;
      const target = ((y - y1) * width + (columnStart - x1)) * channels;
      data.set(image.data.subarray(source, source + (columnEnd - columnStart) * channels), target);
    }
  }
  const [ox, oy] = image.region ?? [0, 0];
  const crop: RasterImage = {
    width,
    height,
    channels,
    data,
    region: [ox + x1, oy + y1, ox + x2, oy + y2],
    root: image.root ?? image,
  };
  return image.ref === undefined ? crop : { ...crop, ref: image.ref };
}

/** The channel values of one pixel. */
export function pixelAt(image: RasterImage, x: number, y: number): number[] {
  if (
    !Number.isInteger(x) ||
    x < 0 ||
    x >= image.width ||
    !Number.isInteger(y) ||
    y < 0 ||
    y >= image.height
  ) {
    throw new SdvpError(
      'ERR_SDVP_RANGE',
      `Pixel (${x}, ${y}) is outside the ${image.width}x${image.height} image.`,
    );
  }
  const offset = (y * image.width + x) * image.channels;
  return Array.from(image.data.subarray(offset, offset + image.channels));
}

const digests = new WeakMap<Uint8Array, string>();

/** A content identifier for an image without a `ref`: `sha256:` and the hash of its size and pixels. */
export function imageDigest(image: RasterImage): string {
  let digest = digests.get(image.data);
  if (!digest) {
    const hash = createHash('sha256');
    hash.update(`${image.width}x${image.height}x${image.channels}:`);
    hash.update(image.data);
    digest = `sha256:${hash.digest('hex')}`;
    digests.set(image.data, digest);
  }
  return digest;
}

/** Which source image, and which box of it, an image shows. */
export function imageReference(image: RasterImage): ImageReference {
  const source = image.root ?? image;
  const ref = image.ref ?? source.ref ?? imageDigest(source);
  return { ref, box: image.region ? [...image.region] : null };
}

/** Moves a box given in an image's own pixels into the pixels of its source image. */
export function boxInSource(image: RasterImage, box: Box): Box {
  const [ox, oy] = image.region ?? [0, 0];
  return [box[0] + ox, box[1] + oy, box[2] + ox, box[3] + oy];
}
