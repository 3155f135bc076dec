// Option parsing for the commands, on Node's util.parseArgs: unknown options and bad values become usage
// errors (ERR_SDVP_USAGE, exit code 2) that name the option.

import { parseArgs } from 'node:util';
import { SdvpError } from '../errors/sdvp-error';

export type OptionSpec = Record<
  string,
  { type: 'string' | 'boolean'; multiple?: boolean; short?: string; default?: string | boolean }
>;

export interface CommandArgs {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  /** An option's string value, or throws naming it when it is required and missing. */
  string(name: string, required: true): string;
  string(name: string, required?: false): string | undefined;
  /** An option as an integer in [min, max], or `fallback` when absent. */
  integer(name: string, fallback: number, min: number, max: number): number;
  /** An option as a finite number in (min, max], or `fallback` when absent. */
  number(name: string, fallback: number, min: number, max: number): number;
  flag(name: string): boolean;
}

export function usageError(message: string, field?: string): SdvpError {
  return new SdvpError('ERR_SDVP_USAGE', message, { field });
}

/** Parses argv; `--help` / `-h` is always accepted and reported as `help`. */
export function parseCommandArgs(
  argv: string[],
  options: OptionSpec,
  allowPositionals = false,
): CommandArgs | 'help' {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals,
      strict: true,
    });
  } catch (error) {
    throw usageError(`${(error as Error).message.replace(/\. To specify a positional.*$/s, '')}.`);
  }
  if (parsed.values.help) return 'help';
  const values = parsed.values as CommandArgs['values'];
  return {
    values,
    positionals: parsed.positionals,
    string(name: string, required?: boolean): string {
      const value = values[name];
      if (value === undefined && required) throw usageError(`--${name} is required.`, `--${name}`);
      return value as string;
    },
    integer(name, fallback, min, max) {
      const raw = values[name];
      if (raw === undefined) return fallback;
      const value = Number(raw);
      if (!Number.isInteger(value) || value < min || value > max) {
        throw usageError(
          `--${name} must be an integer in [${min}, ${max}], but received '${raw}'.`,
          `--${name}`,
        );
      }
      return value;
    },
    number(name, fallback, min, max) {
      const raw = values[name];
      if (raw === undefined) return fallback;
      const value = Number(raw);
      if (raw === '' || !Number.isFinite(value) || value <= min || value > max) {
        throw usageError(
          `--${name} must be a number in (${min}, ${max}], but received '${raw}'.`,
          `--${name}`,
        );
      }
      return value;
    },
    flag(name) {
      return values[name] === true;
    },
  };
}
