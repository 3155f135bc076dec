// Reads an image file into a RasterImage with sharp (decoded once, pixels row-major, channels as stored).

import { SdvpError } from '../errors/sdvp-error';
import { type RasterImage, createImage } from '../program/image';

/** Decodes an image file (PNG, JPEG, WebP, ...); its path becomes the image's `ref`. */
export async function loadImageFile(path: string, field = '--image'): Promise<RasterImage> {
  // sharp is loaded on demand so commands that read no images start without it.
  const sharp = require('sharp') as typeof import('sharp');
  try {
    const { data, info } = await sharp(path).raw().toBuffer({ resolveWithObject: true });
    const pixels = new Uint8Array(data.buffer, data.byteOffset, data.length);
    return createImage(info.width, info.height, info.channels, pixels, path);
  } catch (error) {
    throw new SdvpError(
      'ERR_SDVP_IO',
      `Cannot read the image '${path}' (${field}): ${(error as Error).message}`,
      {
        field,
        cause: error,
      },
    );
  }
}
