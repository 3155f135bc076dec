// What `sdvp run --modules NAME` plugs into the interpreters: one table of providers, resolved in one function.

import { SdvpError } from '../errors/sdvp-error';
import type { ModuleImplementation } from '../program/interpreter';
import type { Framework } from '../program/step-graph';
import type { ViperModules } from '../program/viper-modules';
import { createStubViperModules } from '../program/viper-stub-modules';
import { createStubVisProgModules } from '../program/visprog-stub-modules';

/** Module implementations for one `sdvp run`: VisProg's by module name, ViperGPT's by API entry. */
export interface RunModules {
  visprog: Readonly<Record<string, ModuleImplementation>>;
  viper: ViperModules;
}

/** What a provider may look at: the program's framework and file, and the image files given. */
export interface RunModulesContext {
  framework: Framework;
  programFile: string;
  imageFiles: readonly string[];
}

/** Makes the modules for one --modules value. */
export type RunModulesProvider = (context: RunModulesContext) => RunModules | Promise<RunModules>;

interface ProviderEntry {
  summary: string;
  create: RunModulesProvider;
}

/**
 * The --modules values `sdvp run` accepts. Add an entry here to plug in more (oracle modules from a benchmark's
 * scene graphs, a student model file): `resolveRunModules` and the usage text pick it up.
 */
const PROVIDERS: Record<string, ProviderEntry> = {
  stub: {
    summary:
      'deterministic stand-ins that look at nothing but image sizes (docs/viper.md lists their answers)',
    create: () => ({ visprog: createStubVisProgModules(), viper: createStubViperModules() }),
  },
};

/** The --modules values available, with what each is. */
export function availableRunModules(): Array<{ name: string; summary: string }> {
  return Object.entries(PROVIDERS).map(([name, entry]) => ({ name, summary: entry.summary }));
}

/** The modules a --modules value names; ERR_SDVP_USAGE listing what is available for any other value. */
export async function resolveRunModules(value: string, context: RunModulesContext): Promise<RunModules> {
  const entry = Object.prototype.hasOwnProperty.call(PROVIDERS, value) ? PROVIDERS[value] : undefined;
  if (!entry) {
    const available = availableRunModules()
      .map((provider) => `'${provider.name}' (${provider.summary})`)
      .join(', ');
    throw new SdvpError(
      'ERR_SDVP_USAGE',
      `--modules '${value}' is not available. Available: ${available}. Oracle modules and student models are not wired into sdvp run yet.`,
      {
        field: '--modules',
        expected: availableRunModules()
          .map((provider) => provider.name)
          .join(' | '),
        received: value,
      },
    );
  }
  return entry.create(context);
}
