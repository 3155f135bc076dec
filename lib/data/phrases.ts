// The fixed language of the digit-scene benchmark: LOC object phrases and the VQA questions its programs ask,
// with parsers, so the generator, the oracle modules and the teachers' coverage agree on one vocabulary.

import { COLOR_NAMES, type ColorName } from './scene';

/** Which digits an object phrase selects. */
export interface ObjectQuery {
  color?: ColorName;
  digit?: number;
}

/** `'digit'`, `'red digit'`, `'digit 7'`. */
export function objectPhrase(query: ObjectQuery): string {
  if (query.color !== undefined && query.digit !== undefined) return `${query.color} digit ${query.digit}`;
  if (query.color !== undefined) return `${query.color} digit`;
  if (query.digit !== undefined) return `digit ${query.digit}`;
  return 'digit';
}

/** Parses an object phrase of the benchmark; null for any other text. */
export function parseObjectPhrase(text: unknown): ObjectQuery | null {
  if (typeof text !== 'string') return null;
  const match = /^\s*(?:([a-z]+)\s+)?digits?(?:\s+([0-9]))?\s*$/i.exec(text);
  if (!match) return null;
  const query: ObjectQuery = {};
  if (match[1] !== undefined) {
    const color = match[1].toLowerCase();
    if (!COLOR_NAMES.includes(color as ColorName)) return null;
    query.color = color as ColorName;
  }
  if (match[2] !== undefined) query.digit = Number(match[2]);
  return query;
}

export const IDENTITY_QUESTION = 'What digit is this?';
export const COLOR_QUESTION = 'What color is this digit?';
export const COUNT_QUESTION = 'How many digits are there?';

/** A VQA question of the benchmark, by meaning. */
export type QuestionMeaning =
  | { kind: 'identity' } // the digit shown (a crop around one digit)
  | { kind: 'color' } // its colour
  | { kind: 'count'; color?: ColorName } // how many (colour) digits the image shows
  | { kind: 'exists'; color: ColorName }; // whether a digit of that colour is shown

export function questionText(meaning: QuestionMeaning): string {
  switch (meaning.kind) {
    case 'identity':
      return IDENTITY_QUESTION;
    case 'color':
      return COLOR_QUESTION;
    case 'count':
      return meaning.color ? `How many ${meaning.color} digits are there?` : COUNT_QUESTION;
    case 'exists':
      return `Is there a ${meaning.color} digit?`;
  }
}

/** Parses a VQA question of the benchmark; null for any other text. */
export function parseQuestion(text: unknown): QuestionMeaning | null {
  if (typeof text !== 'string') return null;
  const normalized = text.trim().replace(/\s+/g, ' ').toLowerCase();
  if (normalized === IDENTITY_QUESTION.toLowerCase()) return { kind: 'identity' };
  if (normalized === COLOR_QUESTION.toLowerCase()) return { kind: 'color' };
  if (normalized === COUNT_QUESTION.toLowerCase()) return { kind: 'count' };
  const count = /^how many ([a-z]+) digits are there\?$/.exec(normalized);
  if (count && COLOR_NAMES.includes(count[1] as ColorName))
    return { kind: 'count', color: count[1] as ColorName };
  const exists = /^is there an? ([a-z]+) digit\?$/.exec(normalized);
  if (exists && COLOR_NAMES.includes(exists[1] as ColorName))
    return { kind: 'exists', color: exists[1] as ColorName };
  return null;
}
