// `npm run bench`: the kernel benchmark on its default sizes; prints the table, writes bench/results/kernels.json.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatKernelBenchmark, runKernelBenchmark } from '../lib/bench/kernel-benchmark';
import { packageRoot } from '../lib/native/load-native';

const report = runKernelBenchmark({ log: (line) => process.stderr.write(`${line}\n`) });
const out = path.join(packageRoot(), 'bench', 'results', 'kernels.json');
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
process.stdout.write(`${formatKernelBenchmark(report)}\n(JSON: ${path.relative(process.cwd(), out)})\n`);
