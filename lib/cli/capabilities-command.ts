// `sdvp capabilities`: prints what the native addon was built with, as JSON.

import { capabilities } from '../capabilities';

export async function capabilitiesCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    process.stdout.write(
      'Usage: sdvp capabilities\n\nPrints the SIMD target, CUDA and LibTorch build information as JSON.\n',
    );
    return 0;
  }
  process.stdout.write(`${JSON.stringify(capabilities(), null, 2)}\n`);
  return 0;
}
