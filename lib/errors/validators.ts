// Small argument checks shared by the validators of every area; each failure names the field.

import { argError } from './sdvp-error';

/**
 * An optional finite number: `fallback` when absent, ERR_SDVP_ARG when not a number, ERR_SDVP_RANGE when
 * not finite or when `check` fails. `expected` describes the allowed values for the message.
 */
export function optionalFiniteNumber(
  field: string,
  value: unknown,
  fallback: number,
  check: (x: number) => boolean,
  expected: string,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw argError('ERR_SDVP_ARG', field, expected, value);
  if (!Number.isFinite(value) || !check(value)) throw argError('ERR_SDVP_RANGE', field, expected, value);
  return value;
}
