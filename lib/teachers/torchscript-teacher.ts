// A TorchScript teacher run through the addon: a classifier (forward(images) → [B, K] over `labels`) or a
// grid detector (locate(images, query) → [B, gridSize² + 1]), batched, on cpu or cuda.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SdvpError } from '../errors/sdvp-error';
import { boxesFromGrid, layoutFromWidth } from '../models/grounding';
import { writeImageRegion } from '../models/image-tensor';
import { loadModel } from '../models/load-model';
import type { Model } from '../models/model';
import type { Tensor } from '../models/tensors';
import { splitWords } from '../models/tokenizer';
import type { SubTaskInstance } from '../program/sub-tasks';
import type { TeacherIdentity } from './label-store';
import {
  type AcceptRule,
  type LabelContext,
  type Teacher,
  type TeacherBinding,
  coversInstance,
} from './teacher';
import type { TeacherOutput } from './teacher-output';

export interface TorchScriptTeacherOptions extends TeacherBinding {
  path: string;
  device?: string;
  /** Detector boxes: side as a fraction of the source image's shorter side (grounding rule). */
  boxScale?: number;
  /** Classifier outputs keep at most this many labels (most probable first). Default 20. */
  topLabels?: number;
}

/**
 * The query a detector is given for an instance's text: 1 + the index of the text's last word in `labels`
 * (`'digit 7'` → the label '7'), or 0 (any object) when that word is not a label.
 */
export function detectorQuery(text: string | null, labels: readonly string[]): number {
  const words = splitWords(text ?? '');
  const index = words.length > 0 ? labels.indexOf(words[words.length - 1]) : -1;
  return index < 0 ? 0 : index + 1;
}

function softmax(logits: Float32Array, offset: number, width: number): Float64Array {
  const out = new Float64Array(width);
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < width; i++) max = Math.max(max, logits[offset + i]);
  let sum = 0;
  for (let i = 0; i < width; i++) sum += out[i] = Math.exp(logits[offset + i] - max);
  for (let i = 0; i < width; i++) out[i] /= sum;
  return out;
}

export class TorchScriptTeacher implements Teacher {
  readonly identity: TeacherIdentity;
  readonly batchSize: number;
  readonly maxInFlight = 2; // prepare the next batch while the runtime thread runs this one
  readonly #model: Model;
  readonly #accepts?: AcceptRule;
  readonly #labels: string[];
  readonly #imageSize: number;
  readonly #gridSize: number;
  readonly #options: TorchScriptTeacherOptions;

  private constructor(
    model: Model,
    options: TorchScriptTeacherOptions,
    fingerprint: string,
    kind: 'classification' | 'detection',
  ) {
    this.#model = model;
    this.#options = options;
    this.#accepts = options.accepts;
    this.batchSize = options.batchSize;
    const attributes = model.attributes();
    this.#labels = (attributes.labels as string[]) ?? [];
    this.#imageSize = typeof attributes.image_size === 'number' ? attributes.image_size : 32;
    this.#gridSize = typeof attributes.grid_size === 'number' ? attributes.grid_size : 0;
    this.identity = {
      id: options.id,
      version: options.version,
      kind: 'torchscript',
      module: options.module,
      subTask: options.subTask,
      output: kind,
      fingerprint,
    };
  }

  /** Loads the model and checks it is a classifier (forward + labels) or a detector (locate + labels + grid_size). */
  static async load(options: TorchScriptTeacherOptions): Promise<TorchScriptTeacher> {
    let bytes: Buffer;
    try {
      bytes = readFileSync(options.path);
    } catch (error) {
      throw new SdvpError(
        'ERR_SDVP_MODEL_FILE',
        `Teacher '${options.id}': cannot read ${options.path}: ${(error as Error).message}`,
        {
          field: `teachers.${options.id}.path`,
        },
      );
    }
    const model = await loadModel(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), {
      device: options.device ?? 'cpu',
    });
    const methods = new Set(model.methods().map((method) => method.name));
    const attributes = model.attributes();
    if (!Array.isArray(attributes.labels)) {
      model.dispose();
      throw new SdvpError(
        'ERR_SDVP_MODEL_METHOD',
        `Teacher '${options.id}': ${options.path} has no 'labels' attribute.`,
      );
    }
    const detector = options.module === 'LOC' || options.subTask === 'grounding';
    if (detector && (!methods.has('locate') || typeof attributes.grid_size !== 'number')) {
      model.dispose();
      throw new SdvpError(
        'ERR_SDVP_MODEL_METHOD',
        `Teacher '${options.id}' grounds, so ${options.path} needs locate(images, query) and a grid_size attribute.`,
      );
    }
    if (!detector && !methods.has('forward')) {
      model.dispose();
      throw new SdvpError(
        'ERR_SDVP_MODEL_METHOD',
        `Teacher '${options.id}': ${options.path} has no forward(images).`,
      );
    }
    const fingerprint = createHash('sha256').update(bytes).digest('hex');
    return new TorchScriptTeacher(model, options, fingerprint, detector ? 'detection' : 'classification');
  }

  covers(instance: SubTaskInstance): boolean {
    return coversInstance(this.identity, this.#accepts, instance);
  }

  /** The model (for training and benchmarks). */
  get model(): Model {
    return this.#model;
  }

  async #imageBatch(
    batch: readonly SubTaskInstance[],
    context: LabelContext,
  ): Promise<{ tensor: Tensor; sizes: Array<{ width: number; height: number; sourceSide: number }> }> {
    const side = this.#imageSize;
    const data = new Float32Array(batch.length * 3 * side * side);
    const sizes: Array<{ width: number; height: number; sourceSide: number }> = [];
    for (let i = 0; i < batch.length; i++) {
      const reference = batch[i].input.image;
      if (!reference) {
        throw new SdvpError(
          'ERR_SDVP_TEACHER',
          `Teacher '${this.identity.id}' needs an image, but instance ${batch[i].hash} has none.`,
        );
      }
      const source = await context.images.image(reference.ref);
      const box = reference.box ?? null;
      writeImageRegion(source, box, side, data, i);
      sizes.push({
        width: box ? box[2] - box[0] : source.width,
        height: box ? box[3] - box[1] : source.height,
        sourceSide: Math.min(source.width, source.height),
      });
    }
    return { tensor: { data, shape: [batch.length, 3, side, side] }, sizes };
  }

  async label(batch: readonly SubTaskInstance[], context: LabelContext): Promise<TeacherOutput[]> {
    const { tensor, sizes } = await this.#imageBatch(batch, context);
    if (this.identity.output === 'detection') {
      const query = new Int32Array(batch.map((instance) => detectorQuery(instance.input.text, this.#labels)));
      const scores = await this.#model.callTensor(
        'locate',
        [tensor, { data: query, shape: [batch.length] }],
        { signal: context.signal },
      );
      const width = scores.shape[1];
      const layout = layoutFromWidth(this.#gridSize, width);
      const values = scores.data as Float32Array;
      return batch.map((_, row) =>
        boxesFromGrid(values, row * width, layout, sizes[row], { boxScale: this.#options.boxScale }),
      );
    }
    const logits = await this.#model.callTensor('forward', [tensor], { signal: context.signal });
    const width = logits.shape[1];
    if (width !== this.#labels.length) {
      throw new SdvpError(
        'ERR_SDVP_TEACHER',
        `Teacher '${this.identity.id}' returned ${width} scores for ${this.#labels.length} labels.`,
      );
    }
    const keep = Math.min(width, this.#options.topLabels ?? 20);
    return batch.map((_, row) => {
      const probs = softmax(logits.data as Float32Array, row * width, width);
      const order = [...probs.keys()].sort((a, b) => probs[b] - probs[a] || a - b).slice(0, keep);
      return { labels: order.map((i) => this.#labels[i]), probs: order.map((i) => probs[i]) };
    });
  }

  async close(): Promise<void> {
    this.#model.dispose();
  }
}
