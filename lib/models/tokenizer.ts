// The word tokenizer of the students: lower-cased words, numbers and punctuation marks, mapped onto a
// model's `token_vocab` (index 0 pads, unknown words become `<unk>`), cut or padded to a fixed length.

import { argError } from '../errors/sdvp-error';

/** Splits text the way the tokenizer does: lower-cased runs of letters, runs of digits, single other marks. */
export function splitWords(text: string): string[] {
  return text.toLowerCase().match(/[a-z]+|[0-9]+|[^\sa-z0-9]/g) ?? [];
}

export class WordTokenizer {
  readonly vocab: readonly string[];
  readonly maxTokens: number;
  readonly unknownId: number;
  readonly #ids = new Map<string, number>();

  /**
   * `vocab[0]` must be `'<pad>'`; the vocabulary must contain `'<unk>'`. Texts longer than `maxTokens` are cut
   * (the student reads at most its `max_tokens` anyway).
   */
  constructor(vocab: readonly string[], maxTokens: number) {
    if (!Array.isArray(vocab) || vocab[0] !== '<pad>')
      throw argError('ERR_SDVP_ARG', 'vocab', "a token list whose entry 0 is '<pad>'", vocab?.[0]);
    const unknownId = vocab.indexOf('<unk>');
    if (unknownId < 0)
      throw argError('ERR_SDVP_ARG', 'vocab', "a token list containing '<unk>'", vocab.length);
    if (!Number.isSafeInteger(maxTokens) || maxTokens < 1)
      throw argError('ERR_SDVP_RANGE', 'maxTokens', 'a positive integer', maxTokens);
    this.vocab = vocab;
    this.maxTokens = maxTokens;
    this.unknownId = unknownId;
    vocab.forEach((token, id) => {
      if (!this.#ids.has(token)) this.#ids.set(token, id);
    });
  }

  /** Token ids of one text, without padding. */
  ids(text: string): number[] {
    return splitWords(text)
      .slice(0, this.maxTokens)
      .map((word) => this.#ids.get(word) ?? this.unknownId);
  }

  /** Writes one text's ids, padded with 0, into `out` at row `row` (rows of `maxTokens`). */
  encodeInto(text: string, out: Int32Array, row: number): void {
    const base = row * this.maxTokens;
    out.fill(0, base, base + this.maxTokens);
    const ids = this.ids(text);
    for (let i = 0; i < ids.length; i++) out[base + i] = ids[i];
  }

  /** A [texts.length, maxTokens] token tensor. */
  encodeBatch(texts: readonly string[]): { data: Int32Array; shape: number[] } {
    const data = new Int32Array(texts.length * this.maxTokens);
    texts.forEach((text, row) => this.encodeInto(text, data, row));
    return { data, shape: [texts.length, this.maxTokens] };
  }

  /** Words of `texts` the vocabulary lacks (they become `<unk>`). */
  unknownWords(texts: Iterable<string>): string[] {
    const unknown = new Set<string>();
    for (const text of texts)
      for (const word of splitWords(text)) if (!this.#ids.has(word)) unknown.add(word);
    return [...unknown].sort();
  }
}
