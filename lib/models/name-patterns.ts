// Parameter-name patterns for freezing and parameter groups: a glob string (`*` within one dotted
// segment, `**` across segments, `?` one character) or a RegExp (tested anywhere in the name).

import { argError } from '../errors/sdvp-error';
import type { NativeNamePattern } from '../native/native-torch-binding';

export type NamePattern = string | RegExp;

/** Normalises one pattern or a list of them into the addon's form. */
export function normalizePatterns(value: unknown, field: string): NativeNamePattern[] {
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) throw argError('ERR_SDVP_ARG', field, 'at least one name pattern', value);
  return list.map((pattern, i) => normalizePattern(pattern, Array.isArray(value) ? `${field}[${i}]` : field));
}

function normalizePattern(pattern: unknown, field: string): NativeNamePattern {
  if (typeof pattern === 'string') {
    if (pattern.length === 0) throw argError('ERR_SDVP_ARG', field, 'a non-empty glob', pattern);
    return { pattern, regex: false };
  }
  if (pattern instanceof RegExp) {
    if (pattern.flags.replace(/[gy]/g, '') !== '') {
      throw argError(
        'ERR_SDVP_OPTION',
        field,
        'a RegExp without flags (names are matched case-sensitively)',
        `/${pattern.source}/${pattern.flags}`,
      );
    }
    return { pattern: pattern.source, regex: true };
  }
  throw argError('ERR_SDVP_ARG', field, 'a glob string or a RegExp', pattern);
}
