// A small argv parser for the CLI commands: --flag, --name value / --name=value, and positionals.

import { SdvpError } from '../errors/sdvp-error';

export interface ArgSpec {
  flags: string[];
  values: string[];
}

export interface ParsedArgs {
  flags: Set<string>;
  values: Record<string, string | undefined>;
  positionals: string[];
  /** Reads --name as an integer in [min, max], or throws ERR_SDVP_USAGE. */
  integer(name: string, min: number, max: number): number;
}

export function parseArgs(argv: string[], spec: ArgSpec): ParsedArgs {
  const flags = new Set<string>();
  const values: Record<string, string | undefined> = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-' || !arg.startsWith('-')) {
      positionals.push(arg);
      continue;
    }
    const [name, inline] = arg.replace(/^--?/, '').split(/=(.*)/s, 2);
    if (spec.flags.includes(name) && inline === undefined) {
      flags.add(name);
    } else if (spec.values.includes(name)) {
      const value = inline ?? argv[++i];
      if (value === undefined)
        throw new SdvpError('ERR_SDVP_USAGE', `--${name} needs a value.`, { field: `--${name}` });
      values[name] = value;
    } else {
      const known = [...spec.flags, ...spec.values].map((x) => `--${x}`).join(', ');
      throw new SdvpError('ERR_SDVP_USAGE', `Unknown option '${arg}' (options: ${known}).`, { field: arg });
    }
  }
  return {
    flags,
    values,
    positionals,
    integer(name, min, max) {
      const value = Number(values[name]);
      if (!Number.isInteger(value) || value < min || value > max) {
        throw new SdvpError(
          'ERR_SDVP_USAGE',
          `--${name} must be an integer in [${min}, ${max}], but received '${values[name]}'.`,
          {
            field: `--${name}`,
          },
        );
      }
      return value;
    },
  };
}
