// The student as the programs' modules: VQA through answer(images, tokens) (argmax over answer_vocab) and LOC
// through ground(images, tokens) (grid scores → boxes by the grounding rule of lib/models/grounding.ts),
// micro-batched so concurrent programs share forward passes. Any TorchScript file meeting the model contract
// works; the image side comes from its `image_size` attribute (default 64).

import { SdvpError } from '../errors/sdvp-error';
import { type GridLayout, boxesFromGrid, layoutFromWidth } from '../models/grounding';
import { writeImageRegion } from '../models/image-tensor';
import type { Model } from '../models/model';
import type { Tensor } from '../models/tensors';
import { WordTokenizer } from '../models/tokenizer';
import { BatchScheduler } from '../program/batched-module';
import { type Box, type RasterImage, isRasterImage } from '../program/image';
import type { ModuleImplementation } from '../program/interpreter';

/** What a module call shows the student: a region of a source image and a text. */
export interface StudentView {
  image: RasterImage;
  /** Source pixels; null for the whole image. */
  region: Box | null;
  text: string;
}

/** The view of a module call's image argument (a crop records its region in its root image). */
export function viewOf(image: unknown, text: unknown): StudentView {
  if (!isRasterImage(image))
    throw new SdvpError('ERR_SDVP_ARG', 'The student module needs an image argument.');
  if (typeof text !== 'string')
    throw new SdvpError('ERR_SDVP_ARG', 'The student module needs a text argument.');
  return { image: image.root ?? image, region: image.region ?? null, text };
}

export class Student {
  readonly model: Model;
  readonly tokenizer: WordTokenizer;
  readonly answerVocab: string[];
  readonly imageSide: number;
  readonly gridSize: number;
  readonly layout: GridLayout;
  readonly hasGround: boolean;

  private constructor(model: Model, layout: GridLayout, hasGround: boolean) {
    const attributes = model.attributes();
    this.model = model;
    this.tokenizer = new WordTokenizer(
      attributes.token_vocab as string[],
      (attributes.max_tokens as number) ?? 16,
    );
    this.answerVocab = attributes.answer_vocab as string[];
    this.imageSide = typeof attributes.image_size === 'number' ? attributes.image_size : 64;
    this.gridSize = typeof attributes.grid_size === 'number' ? attributes.grid_size : 0;
    this.layout = layout;
    this.hasGround = hasGround;
  }

  /** Wraps a model that meets the student contract (answer, token_vocab, answer_vocab; ground and grid_size to ground). */
  static async of(model: Model): Promise<Student> {
    const attributes = model.attributes();
    for (const name of ['token_vocab', 'answer_vocab']) {
      if (!Array.isArray(attributes[name])) {
        throw new SdvpError(
          'ERR_SDVP_MODEL_METHOD',
          `A student needs the attribute ${name} (a list of strings).`,
        );
      }
    }
    const methods = new Set(model.methods().map((method) => method.name));
    if (!methods.has('answer'))
      throw new SdvpError('ERR_SDVP_MODEL_METHOD', 'A student needs answer(images, tokens).');
    const hasGround = methods.has('ground') && typeof attributes.grid_size === 'number';
    let layout: GridLayout = { gridSize: 1, hasAbsent: false };
    if (hasGround) {
      const side = typeof attributes.image_size === 'number' ? attributes.image_size : 64;
      const probe = await model.callTensor('ground', [
        { data: new Float32Array(3 * side * side), shape: [1, 3, side, side] },
        { data: new Int32Array(1), shape: [1, 1] },
      ]);
      layout = layoutFromWidth(attributes.grid_size as number, probe.shape[1]);
    }
    return new Student(model, layout, hasGround);
  }

  /** Writes views into preallocated image and token tensors (rows `offset`…). */
  fill(views: readonly StudentView[], images: Float32Array, tokens: Int32Array, offset = 0): void {
    views.forEach((view, i) => {
      writeImageRegion(view.image, view.region, this.imageSide, images, offset + i);
      this.tokenizer.encodeInto(view.text, tokens, offset + i);
    });
  }

  /** Image and token tensors of views. */
  inputs(views: readonly StudentView[]): [Tensor, Tensor] {
    const side = this.imageSide;
    const images = new Float32Array(views.length * 3 * side * side);
    const tokens = new Int32Array(views.length * this.tokenizer.maxTokens);
    this.fill(views, images, tokens);
    return [
      { data: images, shape: [views.length, 3, side, side] },
      { data: tokens, shape: [views.length, this.tokenizer.maxTokens] },
    ];
  }

  /** Answer logits [views, answers]. */
  async answerLogits(views: readonly StudentView[], signal?: AbortSignal): Promise<Float32Array> {
    const out = await this.model.callTensor('answer', this.inputs(views), { signal, batchSize: 256 });
    return out.data as Float32Array;
  }

  /** Grounding scores [views, groundWidth]. */
  async groundScores(views: readonly StudentView[], signal?: AbortSignal): Promise<Float32Array> {
    if (!this.hasGround)
      throw new SdvpError('ERR_SDVP_MODEL_METHOD', 'This student has no ground(images, tokens) method.');
    const out = await this.model.callTensor('ground', this.inputs(views), { signal, batchSize: 256 });
    return out.data as Float32Array;
  }

  /** The answers (argmax) of views. */
  async answers(views: readonly StudentView[], signal?: AbortSignal): Promise<string[]> {
    const logits = await this.answerLogits(views, signal);
    const width = this.answerVocab.length;
    return views.map((_, row) => {
      let best = 0;
      for (let k = 1; k < width; k++) if (logits[row * width + k] > logits[row * width + best]) best = k;
      return this.answerVocab[best];
    });
  }

  /** The boxes of views, in the pixels of each view's region (the grounding rule). */
  async boxes(views: readonly StudentView[], signal?: AbortSignal): Promise<Box[][]> {
    const scores = await this.groundScores(views, signal);
    const width = this.layout.gridSize * this.layout.gridSize + (this.layout.hasAbsent ? 1 : 0);
    return views.map((view, row) => {
      const region = view.region ?? [0, 0, view.image.width, view.image.height];
      return boxesFromGrid(scores, row * width, this.layout, {
        width: region[2] - region[0],
        height: region[3] - region[1],
        sourceSide: Math.min(view.image.width, view.image.height),
      }).boxes;
    });
  }

  /** VQA and LOC implementations for the interpreter, micro-batched. */
  modules(maxBatch = 128): Record<string, ModuleImplementation> {
    // One scheduler: the model runs one batch at a time, so both methods share its queue.
    const scheduler = new BatchScheduler();
    const answer = scheduler.method<StudentView, string>((views) => this.answers(views), maxBatch);
    const modules: Record<string, ModuleImplementation> = {
      VQA: ({ image, question }) => answer(viewOf(image, question)),
    };
    if (this.hasGround) {
      const ground = scheduler.method<StudentView, Box[]>((views) => this.boxes(views), maxBatch);
      modules.LOC = ({ image, object }) => ground(viewOf(image, object));
    }
    return modules;
  }
}
