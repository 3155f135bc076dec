// Opens a dataset folder (ours or a user's): its records per task and split, its images decoded once with
// sharp and named by path plus content digest, and — for the digit benchmark — its scene graphs.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SdvpError } from '../errors/sdvp-error';
import { type RasterImage, createImage } from '../program/image';
import {
  DATASET_FORMAT,
  type DatasetManifest,
  type TaskRecord,
  manifestSchema,
  readJsonLines,
  sceneRecordSchema,
  taskRecordSchema,
  zodIssue,
} from './dataset-format';
import type { SceneLookup } from './oracle-modules';
import type { Scene } from './scene';

/** The path part of an image ref (`images/test/000001.png#1f2e...` → `images/test/000001.png`). */
export function refPath(ref: string): string {
  const hash = ref.lastIndexOf('#');
  return hash < 0 ? ref : ref.slice(0, hash);
}

/** Decodes an image file (PNG, JPEG, WebP...) to 8-bit RGB with sharp. */
export async function decodeImageFile(bytes: Uint8Array, ref: string): Promise<RasterImage> {
  const sharp = require('sharp') as typeof import('sharp');
  try {
    const { data, info } = await sharp(bytes)
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    return createImage(
      info.width,
      info.height,
      3,
      new Uint8Array(data.buffer, data.byteOffset, data.length),
      ref,
    );
  } catch (error) {
    throw new SdvpError('ERR_SDVP_IO', `Cannot decode image ${refPath(ref)}: ${(error as Error).message}`, {
      field: refPath(ref),
      cause: error,
    });
  }
}

export class Dataset {
  readonly root: string;
  readonly manifest: DatasetManifest;
  readonly #records = new Map<string, TaskRecord[]>();
  readonly #images = new Map<string, Promise<RasterImage>>();
  readonly #scenes = new Map<string, Scene>();
  #scenesLoaded = false;

  constructor(root: string) {
    this.root = resolve(root);
    if (!existsSync(this.root) || !statSync(this.root).isDirectory()) {
      throw new SdvpError('ERR_SDVP_IO', `Dataset folder ${this.root} does not exist.`, { field: 'data' });
    }
    this.manifest = this.#readManifest();
  }

  #readManifest(): DatasetManifest {
    const file = join(this.root, 'dataset.json');
    if (existsSync(file)) {
      let value: unknown;
      try {
        value = JSON.parse(readFileSync(file, 'utf8'));
      } catch (error) {
        throw new SdvpError('ERR_SDVP_PARSE', `${file} is not JSON: ${(error as Error).message}`, {
          field: file,
        });
      }
      const parsed = manifestSchema.safeParse(value);
      if (!parsed.success) {
        const { field, message } = zodIssue(parsed.error);
        throw new SdvpError('ERR_SDVP_PARSE', `${file}: field '${field}': ${message}.`, {
          field: `${file}:${field}`,
        });
      }
      return parsed.data;
    }
    // A user's folder without a manifest: every subfolder's <split>.jsonl files are a task's splits.
    const tasks: DatasetManifest['tasks'] = {};
    for (const entry of readdirSync(this.root, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name === 'images' || entry.name === 'scenes') continue;
      const splits: Record<string, string> = {};
      for (const file of readdirSync(join(this.root, entry.name))) {
        if (file.endsWith('.jsonl')) splits[file.slice(0, -6)] = `${entry.name}/${file}`;
      }
      if (Object.keys(splits).length > 0) tasks[entry.name] = splits;
    }
    if (Object.keys(tasks).length === 0) {
      throw new SdvpError(
        'ERR_SDVP_IO',
        `${this.root} holds no dataset: neither dataset.json nor <task>/<split>.jsonl files.`,
        { field: 'data' },
      );
    }
    return { format: DATASET_FORMAT, version: 1, tasks };
  }

  /** Task names in the folder. */
  get tasks(): string[] {
    return Object.keys(this.manifest.tasks);
  }

  /** Split names a task has. */
  splits(task: string): string[] {
    return Object.keys(this.manifest.tasks[task] ?? {});
  }

  /** The records of a task's split (validated; cached). */
  records(task: string, split: string): TaskRecord[] {
    const key = `${task}/${split}`;
    let rows = this.#records.get(key);
    if (!rows) {
      const file = this.manifest.tasks[task]?.[split];
      if (file === undefined) {
        throw new SdvpError(
          'ERR_SDVP_ARG',
          `The dataset has no split '${split}' of task '${task}' (tasks: ${this.tasks.join(', ')}).`,
          { field: 'split' },
        );
      }
      rows = readJsonLines(join(this.root, file), taskRecordSchema);
      this.#records.set(key, rows);
    }
    return rows;
  }

  /** Absolute path of an image given by relative path or ref. */
  imagePath(pathOrRef: string): string {
    return join(this.root, refPath(pathOrRef));
  }

  /** Decodes an image once; its `ref` is the relative path plus a digest of the file's bytes. */
  image(path: string): Promise<RasterImage> {
    let image = this.#images.get(path);
    if (!image) {
      image = (async () => {
        let bytes: Buffer;
        try {
          bytes = readFileSync(this.imagePath(path));
        } catch (error) {
          throw new SdvpError(
            'ERR_SDVP_IO',
            `Image ${path} of dataset ${this.root} cannot be read: ${(error as Error).message}`,
            {
              field: path,
              cause: error,
            },
          );
        }
        const digest = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
        return decodeImageFile(bytes, `${path}#${digest}`);
      })();
      image.catch(() => this.#images.delete(path));
      this.#images.set(path, image);
    }
    return image;
  }

  /** A record's input images by program input name (IMAGE, LEFT, RIGHT...). */
  async inputs(record: TaskRecord): Promise<Record<string, RasterImage>> {
    const entries = await Promise.all(
      Object.entries(record.images).map(async ([name, path]) => [name, await this.image(path)] as const),
    );
    return Object.fromEntries(entries);
  }

  /** Whether the folder has scene graphs (the digit benchmark does). */
  get hasScenes(): boolean {
    return this.manifest.scenes !== undefined;
  }

  /** Scene graphs by image path, from every split's scenes file. */
  scenes(): Map<string, Scene> {
    if (!this.#scenesLoaded) {
      for (const file of Object.values(this.manifest.scenes ?? {})) {
        for (const row of readJsonLines(join(this.root, file), sceneRecordSchema)) {
          const { image, ...scene } = row;
          this.#scenes.set(image, scene as Scene);
        }
      }
      this.#scenesLoaded = true;
    }
    return this.#scenes;
  }

  /** Finds the scene graph of an image ref (for the oracle modules). */
  sceneLookup(): SceneLookup {
    const scenes = this.scenes();
    return (ref) => scenes.get(refPath(ref));
  }
}

/** Opens a dataset folder. */
export function openDataset(root: string): Dataset {
  return new Dataset(root);
}
