// Image sources for teachers: refs resolved to files and decoded once, refusing a file whose bytes no longer
// match the digest in its ref (the labels would be for other pixels).

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { decodeImageFile, refPath } from '../data/dataset';
import { SdvpError } from '../errors/sdvp-error';
import type { RasterImage } from '../program/image';
import type { ImageSource } from './teacher';

/** An ImageSource over files; `resolve` maps a ref to its absolute path. */
export function fileImageSource(resolve: (ref: string) => string): ImageSource {
  const cache = new Map<string, Promise<RasterImage>>();
  return {
    path: resolve,
    image(ref: string): Promise<RasterImage> {
      let image = cache.get(ref);
      if (!image) {
        image = (async () => {
          const path = resolve(ref);
          let bytes: Buffer;
          try {
            bytes = readFileSync(path);
          } catch (error) {
            throw new SdvpError(
              'ERR_SDVP_IO',
              `Image ${path} (ref ${ref}) cannot be read: ${(error as Error).message}`,
              {
                field: ref,
                cause: error,
              },
            );
          }
          const hash = ref.lastIndexOf('#');
          if (hash >= 0) {
            const digest = createHash('sha256')
              .update(bytes)
              .digest('hex')
              .slice(0, ref.length - hash - 1);
            if (digest !== ref.slice(hash + 1)) {
              throw new SdvpError(
                'ERR_SDVP_IO',
                `Image ${path} changed since instance ref ${ref} was recorded (digest ${digest}); re-run the programs.`,
                { field: ref },
              );
            }
          }
          return decodeImageFile(bytes, ref);
        })();
        image.catch(() => cache.delete(ref));
        cache.set(ref, image);
      }
      return image;
    },
  };
}

/** Resolves refs (`relative/path.png#digest`) against a folder. */
export function folderImageSource(folder: string): ImageSource {
  const { join } = require('node:path') as typeof import('node:path');
  return fileImageSource((ref) => join(folder, refPath(ref)));
}
