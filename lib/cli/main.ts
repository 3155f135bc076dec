#!/usr/bin/env node
// `sdvp <command>`: the command-line entry; each command lives in its own module and is loaded on demand.

import { SdvpError } from '../errors/sdvp-error';

/** A command takes its own argv (after the command words) and resolves to the process exit code. */
type CommandRunner = (argv: string[]) => Promise<number>;

interface CommandEntry {
  words: string[];
  summary: string;
  load: () => CommandRunner;
}

const commands: CommandEntry[] = [
  {
    words: ['bench', 'kernels'],
    summary: 'time the fused distillation loss against PyTorch, a TypeScript loop and the memory floor',
    load: () => require('./bench-kernels-command').benchKernelsCommand,
  },
  {
    words: ['decompose'],
    summary: 'print the step graph of VisProg or ViperGPT programs',
    load: () => require('./decompose-command').decomposeCommand,
  },
  {
    words: ['run'],
    summary: 'run one VisProg or ViperGPT program (ViperGPT in a Python sandbox) and print its trace',
    load: () => require('./run-command').runCommand,
  },
  {
    words: ['data'],
    summary: 'build the digit-scene benchmark (sdvp data digits --out DIR)',
    load: () => require('./data-command').dataCommand,
  },
  {
    words: ['instances'],
    summary: "run a dataset's programs and write their sub-task instances",
    load: () => require('./instances-command').instancesCommand,
  },
  {
    words: ['teachers'],
    summary: 'train the built-in teachers, label instances into a store, export labels',
    load: () => require('./teachers-command').teachersCommand,
  },
  {
    words: ['distill'],
    summary: 'run stepwise distillation (SDVP) from a config, or resume a stopped run; on N workers too',
    load: () => require('./distill-command').distillCommand,
  },
  {
    words: ['eval'],
    summary: 'evaluate a student checkpoint or the teachers on a dataset split',
    load: () => require('./eval-command').evalCommand,
  },
  {
    words: ['demo'],
    summary: 'the main job: SDVP end to end on the digit benchmark, with the results table',
    load: () => require('./demo-command').demoCommand,
  },
  {
    words: ['build'],
    summary: 'rebuild the native addon in the installed package (CMake: CUDA, LibTorch; else node-gyp)',
    load: () => require('./build-command').buildCommand,
  },
  {
    words: ['doctor'],
    summary: 'show what this machine and the addon have, and the commands that add what is missing',
    load: () => require('./doctor-command').doctorCommand,
  },
  {
    words: ['capabilities'],
    summary: 'print what the native addon was built with (SIMD target, CUDA, LibTorch)',
    load: () => require('./capabilities-command').capabilitiesCommand,
  },
];

function usage(): string {
  const lines = ['Usage: sdvp <command> [options]', '', 'Commands:'];
  for (const command of commands) lines.push(`  ${command.words.join(' ').padEnd(16)} ${command.summary}`);
  lines.push('', 'Run `sdvp <command> --help` for the options of one command.');
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(`${usage()}\n`);
    return argv.length === 0 ? 2 : 0;
  }
  const entry = commands.find((command) => command.words.every((word, i) => argv[i] === word));
  if (!entry) {
    process.stderr.write(`sdvp: unknown command '${argv.join(' ')}'.\n\n${usage()}\n`);
    return 2;
  }
  return entry.load()(argv.slice(entry.words.length));
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      if (error instanceof SdvpError && error.code === 'ERR_SDVP_USAGE') {
        process.stderr.write(`sdvp: ${error.message} [${error.code}]\n`);
        process.exitCode = 2;
        return;
      }
      if (error instanceof SdvpError) {
        process.stderr.write(`sdvp: ${error.message} [${error.code}]\n`);
        if (error.fix) process.stderr.write(`To fix: ${error.fix}\n`);
      } else {
        process.stderr.write(
          `sdvp: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
        );
      }
      process.exitCode = 1;
    },
  );
}
