// What `sdvp run --modules NAME` plugs into the interpreters: one table of providers, resolved in one function.

import { existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { openDataset } from '../data/dataset';
import { oracleModules } from '../data/oracle-modules';
import { SdvpError } from '../errors/sdvp-error';
import { loadModel } from '../models/load-model';
import { defaultThreads, setThreads } from '../models/torch-runtime';
import { viperModulesFromVisProg } from '../program/framework-bridge';
import type { ModuleImplementation } from '../program/interpreter';
import type { Framework } from '../program/step-graph';
import type { ViperModules } from '../program/viper-modules';
import { createStubViperModules } from '../program/viper-stub-modules';
import { createStubVisProgModules } from '../program/visprog-stub-modules';
import { Student } from '../run/student';

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
  oracle: {
    summary:
      "the digit benchmark's scene graphs answer LOC/find and VQA/simple_query (images from an sdvp data digits folder)",
    create: (context) => bothFrameworks(oracleFor(context.imageFiles)),
  },
  MODEL: {
    summary:
      'a student TorchScript file (any path ending in .pt): LOC/find through ground, VQA/simple_query through answer',
    create: () => {
      throw new SdvpError('ERR_SDVP_USAGE', 'Give the student file itself: --modules path/to/student.pt.', {
        field: '--modules',
      });
    },
  },
};

function bothFrameworks(visprog: Record<string, ModuleImplementation>): RunModules {
  return { visprog, viper: viperModulesFromVisProg(visprog) };
}

/** Oracle modules for images of a benchmark folder: the folder is found above the first image. */
function oracleFor(imageFiles: readonly string[]): Record<string, ModuleImplementation> {
  if (imageFiles.length === 0)
    throw new SdvpError('ERR_SDVP_USAGE', '--modules oracle needs --image (an image of a digit benchmark).', {
      field: '--image',
    });
  let root = dirname(resolve(imageFiles[0]));
  while (!existsSync(join(root, 'dataset.json'))) {
    if (dirname(root) === root) {
      throw new SdvpError(
        'ERR_SDVP_USAGE',
        `--modules oracle: no dataset.json above ${imageFiles[0]} (the image must be part of an sdvp data digits folder).`,
        {
          field: '--image',
        },
      );
    }
    root = dirname(root);
  }
  const scenes = openDataset(root).scenes();
  return oracleModules((ref) => scenes.get(relative(root, resolve(ref.split('#')[0]))));
}

/** A student checkpoint as modules. */
async function studentFor(file: string): Promise<RunModules> {
  setThreads(defaultThreads());
  const student = await Student.of(await loadModel(file));
  return bothFrameworks(student.modules());
}

/** The --modules values available, with what each is. */
export function availableRunModules(): Array<{ name: string; summary: string }> {
  return Object.entries(PROVIDERS).map(([name, entry]) => ({ name, summary: entry.summary }));
}

/** The modules a --modules value names; ERR_SDVP_USAGE listing what is available for any other value. */
export async function resolveRunModules(value: string, context: RunModulesContext): Promise<RunModules> {
  if (value.endsWith('.pt') || (value !== 'stub' && value !== 'oracle' && existsSync(value)))
    return studentFor(value);
  const entry = Object.prototype.hasOwnProperty.call(PROVIDERS, value) ? PROVIDERS[value] : undefined;
  if (!entry) {
    const available = availableRunModules()
      .map((provider) => `'${provider.name}' (${provider.summary})`)
      .join(', ');
    throw new SdvpError('ERR_SDVP_USAGE', `--modules '${value}' is not available. Available: ${available}.`, {
      field: '--modules',
      expected: availableRunModules()
        .map((provider) => provider.name)
        .join(' | '),
      received: value,
    });
  }
  return entry.create(context);
}
