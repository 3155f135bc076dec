// npm's install step for sdvp (called by scripts/install.js): builds the best addon the machine allows
// and never fails the install over an optional part; only a part demanded with SDVP_TORCH=ON or
// SDVP_CUDA=ON that cannot be built, or an unreadable SDVP_* setting, fails it.

import { SdvpError } from '../errors/sdvp-error';
import { buildAddon, missingDemandedParts } from './build-addon';
import { buildOptionsFromEnv } from './build-options';
import { formatBuildSummary } from './build-record';
import { REBUILD } from './fix-commands';
import { packageRoot } from '../native/load-native';

function say(text: string): void {
  process.stderr.write(`${text}\n`);
}

/** Resolves to the exit code of the install step. */
export async function runInstallHook(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (env.SDVP_SKIP_BUILD && env.SDVP_SKIP_BUILD !== '0') {
    say(`sdvp: SDVP_SKIP_BUILD is set, so no native addon was built; build it later with: ${REBUILD}`);
    return 0;
  }
  let options: ReturnType<typeof buildOptionsFromEnv>;
  try {
    options = buildOptionsFromEnv(env);
  } catch (error) {
    say(`sdvp: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
  const root = packageRoot();
  try {
    const record = await buildAddon(options, { fallback: true, trigger: 'install', root });
    say(formatBuildSummary(record, root));
    const missing = missingDemandedParts(record);
    const demanded = options.torch === 'on' || options.cuda === 'on';
    if (missing.length > 0 && demanded) {
      say(`sdvp: ${missing.join(' and ')} was demanded (SDVP_TORCH / SDVP_CUDA = on) but could not be built.`);
      return 1;
    }
    if (!record.ok) say(`sdvp: the install goes on without the addon; when the fixes above are done, run: ${REBUILD}`);
    return 0;
  } catch (error) {
    // Any other surprise (no TorchConfig.cmake under SDVP_TORCH_PREFIX, an unwritable folder) is reported,
    // and only fails the install when the user asked for a part explicitly.
    const message = error instanceof SdvpError ? `${error.message} [${error.code}]` : String(error);
    say(`sdvp: the addon build did not run: ${message}\nsdvp: build it later with: ${REBUILD}`);
    return options.torch === 'on' || options.cuda === 'on' || options.torchPrefix ? 1 : 0;
  }
}
