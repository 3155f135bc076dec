// `sdvp distill`: a stepwise distillation run from a config file, or the continuation of a stopped one — in
// this process, on N worker processes per machine (--nproc-per-node, torchrun's conventions), or as one such
// worker (started by that launcher or by torchrun: RANK, WORLD_SIZE, ... in the environment).

import * as os from 'node:os';
import { join, resolve } from 'node:path';
import { DEFAULT_TIMEOUT_MS, initProcessGroup } from '../distributed/init-process-group';
import { launchWorkers } from '../distributed/launch';
import type { ProcessGroup } from '../distributed/process-group';
import { SdvpError } from '../errors/sdvp-error';
import { type RunConfig, loadRunConfig } from '../run/config';
import { distill } from '../run/distill';
import { type CommandArgs, parseCommandArgs, usageError } from './command-args';
import { createProgress } from './progress';

const USAGE = `Usage: sdvp distill --config FILE [--json] [LAUNCH OPTIONS]
       sdvp distill --resume DIR [--json] [LAUNCH OPTIONS]

Runs SDVP as the config says (docs/distill.md lists every field): the target programs are executed with
the student, their sub-task instances labelled by the teachers into the run's label store, and the
student distilled stage by stage, with checkpoints, evaluation and metrics in the run folder.
Ctrl-C checkpoints and stops; --resume DIR continues to the result an uninterrupted run reaches.

Options:
  --config FILE   the run's config (JSON)
  --resume DIR    continue the run in DIR (its config.json is used)
  --json          print the final state as JSON
  -h, --help      show this help

Launch options (data parallel over PyTorch's c10d, Gloo; docs/distributed.md):
  --nproc-per-node N   start N worker processes on this machine, each with its share of the threads
                       ($SDVP_THREADS, else every core, divided by N); the run shares out program
                       execution, labelling, every batch and evaluation, and rank 0 writes the run folder
  --nnodes M           machines in the run (default 1); run the same command on each, with its --node-rank
  --node-rank R        this machine's index in [0, M) (default 0)
  --master-addr A      machine 0's address (default 127.0.0.1)
  --master-port P      the rendezvous port on machine 0 (default: a free port on one machine, else 29500)
  --timeout S          seconds a collective waits for the other ranks before the run fails naming the
                       missing ones (default 600): how soon a hung worker is noticed
On several machines the run folder must be on a shared filesystem, at the same path on each.
A worker started by torchrun (torchrun --no_python --nproc_per_node N sdvp distill --config FILE) joins
its group from RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT.`;

interface Launch {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr?: string;
  masterPort?: number;
}

function launchOf(args: CommandArgs): Launch | undefined {
  const given = ['nproc-per-node', 'nnodes', 'node-rank', 'master-addr', 'master-port'].filter(
    (name) => args.values[name] !== undefined,
  );
  if (given.length === 0) return undefined;
  if (args.values['nproc-per-node'] === undefined)
    throw usageError(`--${given[0]} needs --nproc-per-node.`, `--${given[0]}`);
  const nnodes = args.integer('nnodes', 1, 1, 1 << 16);
  const nodeRank = args.integer('node-rank', 0, 0, nnodes - 1);
  const port =
    args.values['master-port'] === undefined ? undefined : args.integer('master-port', 0, 1, 65535);
  return {
    nprocPerNode: args.integer('nproc-per-node', 1, 1, 1024),
    nnodes,
    nodeRank,
    masterAddr: args.string('master-addr'),
    masterPort: port,
  };
}

/** A stop on request (Ctrl-C) says where to resume and exits with 130; any other error goes on. */
function exitCodeOfStop(error: unknown): number {
  if (!(error instanceof SdvpError) || error.code !== 'ERR_SDVP_ABORTED') throw error;
  process.stderr.write(`sdvp: ${error.message}\n`);
  return 130;
}

/** Starts the workers of this machine with the same command, minus the launch options. */
async function launch(argv: string[], launchOptions: Launch): Promise<number> {
  const own = new Set(['--nproc-per-node', '--nnodes', '--node-rank', '--master-addr', '--master-port']);
  const workerArgs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const [name] = argv[i].split('=');
    if (!own.has(name)) workerArgs.push(argv[i]);
    else if (!argv[i].includes('=')) i++;
  }
  const fromEnvironment = Number(process.env.SDVP_THREADS);
  const cores =
    Number.isSafeInteger(fromEnvironment) && fromEnvironment > 0
      ? fromEnvironment
      : os.availableParallelism();
  const threads = Math.max(1, Math.floor(cores / launchOptions.nprocPerNode));
  const interrupt = new AbortController();
  const kill = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts > 1) {
      kill.abort();
      return;
    }
    process.stderr.write(
      '\nsdvp: stopping every worker after the same step (checkpointing); press Ctrl-C again to stop them at once\n',
    );
    interrupt.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    await launchWorkers({
      script: join(__dirname, 'main.js'),
      args: ['distill', ...workerArgs],
      ...launchOptions,
      env: { ...process.env, SDVP_THREADS: String(threads) },
      threadsPerWorker: threads,
      signal: kill.signal,
      interrupt: interrupt.signal,
      // Rank 0's standard output is the command's (the result, --json); every other line is labelled.
      onOutput: (rank, stream, line) => {
        if (stream === 'stdout' && rank === 0) process.stdout.write(`${line}\n`);
        else process.stderr.write(`[rank ${rank}] ${line}\n`);
      },
    });
    return 0;
  } catch (error) {
    return exitCodeOfStop(error);
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}

/** Whether this process was started as one worker of a group (by sdvp's launcher or torchrun). */
function isWorker(): boolean {
  return process.env.WORLD_SIZE !== undefined && process.env.RANK !== undefined;
}

export async function distillCommand(argv: string[]): Promise<number> {
  const args = parseCommandArgs(argv, {
    config: { type: 'string' },
    resume: { type: 'string' },
    json: { type: 'boolean' },
    'nproc-per-node': { type: 'string' },
    nnodes: { type: 'string' },
    'node-rank': { type: 'string' },
    'master-addr': { type: 'string' },
    'master-port': { type: 'string' },
    timeout: { type: 'string' },
  });
  if (args === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const resumeDir = args.string('resume');
  const configFile = args.string('config');
  if (!resumeDir === !configFile) throw usageError('Give either --config FILE or --resume DIR.');
  const launchOptions = launchOf(args);
  // The workers get --timeout with the rest of the command line.
  const timeoutMs = Math.round(1000 * args.number('timeout', DEFAULT_TIMEOUT_MS / 1000, 0, 86_400));
  if (args.values.timeout !== undefined && !launchOptions && !isWorker())
    throw usageError('--timeout needs --nproc-per-node (or a worker started by torchrun).', '--timeout');
  const config = loadRunConfig(resumeDir ? join(resumeDir, 'config.json') : configFile!);
  // The run folder as the run recorded it (absolute), so a relative --resume DIR names the same run.
  if (resumeDir) config.run = resolve(resumeDir);
  if (launchOptions) return launch(argv, launchOptions);
  if (!isWorker()) return run(config, resumeDir !== undefined, args.flag('json'));
  // Machines may start minutes apart: the start keeps at least the default wait.
  const group = await initProcessGroup({
    timeoutMs,
    rendezvousTimeoutMs: Math.max(timeoutMs, DEFAULT_TIMEOUT_MS),
  });
  try {
    const code = await run(config, resumeDir !== undefined, args.flag('json'), group);
    // Rank 0 writes the run's last files after the last collective; the others wait for it.
    if (code === 0) await group.barrier();
    return code;
  } finally {
    await group.destroy().catch(() => {});
  }
}

/** One process's part of the run: the whole run, or one rank's (which alone reports when it is rank 0). */
async function run(config: RunConfig, resume: boolean, json: boolean, group?: ProcessGroup): Promise<number> {
  const reports = !group || group.rank === 0;
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    // A worker stops once; its launcher (or the terminal, again) ends it when it must stop at once.
    if (interrupts > 1) {
      if (!group) process.exit(130);
      return;
    }
    if (reports)
      process.stderr.write(
        '\nsdvp: stopping after this step (checkpointing); press Ctrl-C again to quit at once\n',
      );
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  const progress = createProgress();
  let current = '';
  try {
    const result = await distill(config, {
      resume,
      signal: controller.signal,
      group,
      log: reports
        ? (line) => {
            progress.stop();
            current = '';
            process.stderr.write(`${line}\n`);
          }
        : undefined,
      onProgress: reports
        ? (event) => {
            const label = `${event.phase}${event.stage ? ` ${event.stage}` : ''}`;
            if (label !== current) {
              progress.stop();
              progress.start(
                label,
                event.total,
                event.phase === 'train' ? 'steps' : event.phase === 'label' ? 'instances' : 'programs',
              );
              current = label;
            }
            const note =
              event.loss !== undefined
                ? `loss ${event.loss.toFixed(3)}, ${event.samplesPerSecond?.toFixed(0)} samples/s`
                : '';
            progress.update(event.done, note);
          }
        : undefined,
    });
    progress.stop();
    if (!reports) return 0;
    if (json) process.stdout.write(`${JSON.stringify(result.state)}\n`);
    else {
      const final = result.state.final!;
      const tasks = Object.entries(final.tasks)
        .map(([task, accuracy]) => `${task} ${(accuracy * 100).toFixed(1)}%`)
        .join(', ');
      process.stdout.write(`run ${result.run} done: ${tasks}; student ${result.checkpoint}\n`);
    }
    return 0;
  } catch (error) {
    progress.stop();
    return exitCodeOfStop(error);
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
