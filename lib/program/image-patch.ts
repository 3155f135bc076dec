// ViperGPT's ImagePatch: a crop of an image with coordinates in ViperGPT's convention, over a RasterImage.
//
// Two box conventions meet here (docs/viper.md):
// - ViperGPT (inside programs): left, lower, right, upper in pixels of the image the patch chain started from,
//   y measured UPWARD from the bottom edge; a patch covers rows [height - upper, height - lower) of that image.
// - RasterImage (at the module boundary): [x1, y1, x2, y2] in the pixels of the image given to the module, y DOWN,
//   x2 and y2 exclusive, as PIL's crop; crops record their `region` in the source image.

import { type Box, type RasterImage, cropImage } from './image';
import { PythonError } from './python-errors';
import { PyImage, PyObject } from './python-values';

/** ViperGPT coordinates of a patch. */
export interface PatchCoordinates {
  left: number;
  lower: number;
  right: number;
  upper: number;
}

/** The margin ViperGPT's crop() adds on every side (its `crop_larger_margin` setting, on by default). */
export const VIPER_CROP_MARGIN = 10;

/** An image crop as ViperGPT programs see it. */
export class ImagePatch extends PyObject {
  readonly typeName = 'ImagePatch';
  #croppedValue: PyImage | undefined;

  constructor(
    /** The pixels of the patch (a RasterImage whose `region` says where it lies in the source image). */
    readonly cropped: RasterImage,
    readonly left: number,
    readonly lower: number,
    readonly right: number,
    readonly upper: number,
  ) {
    super();
  }

  get width(): number {
    return this.cropped.width;
  }

  get height(): number {
    return this.cropped.height;
  }

  get horizontalCenter(): number {
    return (this.left + this.right) / 2;
  }

  get verticalCenter(): number {
    return (this.lower + this.upper) / 2;
  }

  /** `cropped_image` as a program value (the same object each time). */
  get croppedValue(): PyImage {
    this.#croppedValue ??= new PyImage(this.cropped);
    return this.#croppedValue;
  }

  override reprText(): string {
    return `ImagePatch(${this.left}, ${this.lower}, ${this.right}, ${this.upper})`;
  }
}

/**
 * A crop whose pixels are copied out of the source only when something reads them (a module, a teacher): programs
 * make many patches that no model ever looks at, as ViperGPT's tensor slices are views. Equal to cropImage's result.
 * `data` is a getter (an own accessor per crop would cost 30x more to create), so `{ ...crop }` drops the pixels and
 * is no longer a RasterImage: copy crops with cropImage or createImage.
 */
class LazyCrop implements RasterImage {
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  readonly ref?: string;
  readonly region: Box;
  readonly root: RasterImage;
  readonly #source: RasterImage;
  readonly #box: Box;
  #data: Uint8Array | undefined;

  constructor(source: RasterImage, box: Box) {
    const [x1, y1, x2, y2] = box;
    const [ox, oy] = source.region ?? [0, 0];
    this.width = x2 - x1;
    this.height = y2 - y1;
    this.channels = source.channels;
    this.region = [ox + x1, oy + y1, ox + x2, oy + y2];
    this.root = source.root ?? source;
    if (source.ref !== undefined) this.ref = source.ref;
    this.#source = source;
    this.#box = box;
  }

  get data(): Uint8Array {
    this.#data ??= cropImage(this.#source, this.#box).data;
    return this.#data;
  }
}

/** Where Python's `sequence[start:stop]` lands in a sequence of `length` (negative indices count from the end). */
function sliceBounds(start: number, stop: number, length: number): [number, number] {
  const clamp = (index: number) => (index < 0 ? Math.max(0, index + length) : Math.min(index, length));
  const from = clamp(start);
  return [from, Math.max(from, clamp(stop))];
}

/**
 * ViperGPT's `ImagePatch(image, left, lower, right, upper, parent_left, parent_lower)`: with no coordinates the whole
 * image; otherwise the rows `[H - upper, H - lower)` and columns `[left, right)` of `image` (torch slicing: negative
 * indices wrap, out-of-range ones clamp), with coordinates shifted by the parent's. An empty crop raises
 * `Exception('ImagePatch has no area')` as ViperGPT does.
 */
export function createImagePatch(
  image: RasterImage,
  coordinates?: PatchCoordinates,
  parentLeft = 0,
  parentLower = 0,
): ImagePatch {
  let patch: ImagePatch;
  if (!coordinates) {
    patch = new ImagePatch(image, 0, 0, image.width, image.height);
  } else {
    const { left, lower, right, upper } = coordinates;
    const [y1, y2] = sliceBounds(image.height - upper, image.height - lower, image.height);
    const [x1, x2] = sliceBounds(left, right, image.width);
    const cropped = new LazyCrop(image, [x1, y1, x2, y2]);
    patch = new ImagePatch(
      cropped,
      left + parentLeft,
      lower + parentLower,
      right + parentLeft,
      upper + parentLower,
    );
  }
  if (patch.width === 0 || patch.height === 0) throw new PythonError('Exception', 'ImagePatch has no area');
  return patch;
}

/**
 * ViperGPT's `patch.crop(left, lower, right, upper)`: coordinates in the patch's own frame (y up), enlarged by the
 * margin and clamped to the patch, then cut from the patch.
 */
export function cropPatch(patch: ImagePatch, coordinates: PatchCoordinates): ImagePatch {
  const left = Math.max(0, coordinates.left - VIPER_CROP_MARGIN);
  const lower = Math.max(0, coordinates.lower - VIPER_CROP_MARGIN);
  const right = Math.min(patch.width, coordinates.right + VIPER_CROP_MARGIN);
  const upper = Math.min(patch.height, coordinates.upper + VIPER_CROP_MARGIN);
  return createImagePatch(patch.cropped, { left, lower, right, upper }, patch.left, patch.lower);
}

/**
 * A detector box `[x1, y1, x2, y2]` in the pixels of an image `height` rows tall (y down) as ViperGPT coordinates in
 * that image (y up), truncated to integers first as ViperGPT's GLIP wrapper does.
 */
export function pixelBoxToPatchCoordinates(box: Box, height: number): PatchCoordinates {
  const [x1, y1, x2, y2] = box.map(Math.trunc);
  return { left: x1, lower: height - y2, right: x2, upper: height - y1 };
}

/** The pixel box `[x1, y1, x2, y2]` (y down) a patch covers in its source image. */
export function patchPixelBox(patch: ImagePatch): Box {
  return patch.cropped.region ?? [0, 0, patch.cropped.width, patch.cropped.height];
}

/**
 * A box given in source-image pixels, moved into the pixels of `image` (a crop, or the source itself) and clipped
 * to it; null when the box misses the image. What a module that knows boxes in the source (an oracle over a scene
 * graph) returns from `find`.
 */
export function sourceBoxInImage(image: RasterImage, box: Box): Box | null {
  const [ox, oy] = image.region ?? [0, 0];
  const x1 = Math.max(0, box[0] - ox);
  const y1 = Math.max(0, box[1] - oy);
  const x2 = Math.min(image.width, box[2] - ox);
  const y2 = Math.min(image.height, box[3] - oy);
  return x2 > x1 && y2 > y1 ? [x1, y1, x2, y2] : null;
}
