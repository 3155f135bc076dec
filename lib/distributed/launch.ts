// launchWorkers: starts N Node worker processes of any entry script on this machine with torchrun's
// environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT),
// forwards their output line by line, and fails fast: when one worker fails, the others are stopped.

import { type ChildProcess, spawn } from 'node:child_process';
import * as os from 'node:os';
import { SdvpError, argError } from '../errors/sdvp-error';
import { findFreePort } from './free-port';
import { DEFAULT_MASTER_PORT } from './init-process-group';

export interface LaunchOptions {
  /** The Node entry script each worker runs. */
  script: string;
  /** Its arguments (the same for every worker). */
  args?: string[];
  /** Workers on this machine. */
  nprocPerNode: number;
  /** Machines in the run (default 1); each runs launchWorkers with its own nodeRank. */
  nnodes?: number;
  /** This machine's index in [0, nnodes) (default 0); its workers get ranks nodeRank·nprocPerNode + i. */
  nodeRank?: number;
  /** Rank 0's machine (default 127.0.0.1). */
  masterAddr?: string;
  /** The rendezvous port (default: a free port for one machine, else 29500). */
  masterPort?: number;
  /** The workers' base environment (default process.env). */
  env?: Record<string, string | undefined>;
  /**
   * OMP_NUM_THREADS of each worker unless the environment sets it (default: this machine's cores divided
   * by nprocPerNode, at least 1), so the workers do not oversubscribe the cores.
   */
  threadsPerWorker?: number;
  /** Node flags for the workers (default none). */
  execArgv?: string[];
  /** Where a worker's output lines go (default: this process's stdout/stderr, prefixed `[rank r] `). */
  onOutput?: (rank: number, stream: 'stdout' | 'stderr', line: string) => void;
  /** After a failure, how long the others get between SIGTERM and SIGKILL (default 5000 ms). */
  graceMs?: number;
  /** Aborting stops every worker and rejects with ERR_SDVP_ABORTED. */
  signal?: AbortSignal;
  /**
   * Aborting passes a SIGINT to every worker, to stop cleanly (sdvp distill: after the same step on every
   * rank, checkpointed). A worker that then exits with code 130 has stopped, not failed: the others are left
   * to stop by themselves and the launch rejects with ERR_SDVP_ABORTED once all have exited.
   */
  interrupt?: AbortSignal;
}

/** The exit code of a worker that stopped on SIGINT (128 + 2, as shells report it). */
export const INTERRUPTED_EXIT_CODE = 130;

export interface WorkerExit {
  rank: number;
  localRank: number;
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface LaunchResult {
  masterPort: number;
  workers: WorkerExit[];
}

/** Lines of stderr kept per worker for the error of a failed run. */
const TAIL_LINES = 20;

function positiveInteger(field: string, value: unknown, fallback: number | undefined, min: number): number {
  const raw = value ?? fallback;
  if (typeof raw !== 'number' || !Number.isInteger(raw))
    throw argError('ERR_SDVP_ARG', field, `an integer ≥ ${min}`, value);
  if (raw < min) throw argError('ERR_SDVP_RANGE', field, `an integer ≥ ${min}`, raw);
  return raw;
}

/** Splits a stream into lines for `emit` (the last partial line when it ends). */
function forwardLines(stream: NodeJS.ReadableStream | null, emit: (line: string) => void): void {
  if (!stream) return;
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) emit(line);
  });
  stream.on('end', () => {
    if (pending.length > 0) emit(pending);
  });
}

/**
 * Runs `nprocPerNode` workers of `script` and resolves when all exit with code 0. The first worker to
 * fail (a non-zero code or a signal) makes the others stop (SIGTERM, then SIGKILL after graceMs), and the
 * promise rejects with ERR_SDVP_DIST_WORKER naming that worker's rank, exit and last stderr lines.
 */
export async function launchWorkers(options: LaunchOptions): Promise<LaunchResult> {
  if (typeof options !== 'object' || options === null)
    throw argError('ERR_SDVP_ARG', 'options', 'an object', options);
  if (typeof options.script !== 'string' || options.script.length === 0)
    throw argError('ERR_SDVP_ARG', 'script', 'the path of a Node entry script', options.script);
  const nproc = positiveInteger('nprocPerNode', options.nprocPerNode, undefined, 1);
  const nnodes = positiveInteger('nnodes', options.nnodes, 1, 1);
  const nodeRank = positiveInteger('nodeRank', options.nodeRank, 0, 0);
  if (nodeRank >= nnodes)
    throw argError('ERR_SDVP_RANGE', 'nodeRank', `an integer in [0, ${nnodes})`, nodeRank);
  const masterAddr = options.masterAddr ?? '127.0.0.1';
  const masterPort =
    options.masterPort === undefined
      ? nnodes === 1
        ? await findFreePort()
        : DEFAULT_MASTER_PORT
      : positiveInteger('masterPort', options.masterPort, undefined, 1);
  const cores = os.availableParallelism();
  const threads = positiveInteger(
    'threadsPerWorker',
    options.threadsPerWorker,
    Math.max(1, Math.floor(cores / nproc)),
    1,
  );
  const graceMs = positiveInteger('graceMs', options.graceMs, 5000, 0);
  const baseEnv = options.env ?? process.env;
  const emit =
    options.onOutput ??
    ((rank: number, stream: 'stdout' | 'stderr', line: string) =>
      (stream === 'stdout' ? process.stdout : process.stderr).write(`[rank ${rank}] ${line}\n`));
  if (options.signal?.aborted)
    throw new SdvpError('ERR_SDVP_ABORTED', 'launchWorkers was aborted before it started.');

  const worldSize = nnodes * nproc;
  const children: { rank: number; localRank: number; child: ChildProcess; tail: string[] }[] = [];
  for (let localRank = 0; localRank < nproc; localRank++) {
    const rank = nodeRank * nproc + localRank;
    const env: Record<string, string | undefined> = {
      ...baseEnv,
      RANK: String(rank),
      WORLD_SIZE: String(worldSize),
      LOCAL_RANK: String(localRank),
      LOCAL_WORLD_SIZE: String(nproc),
      GROUP_RANK: String(nodeRank),
      MASTER_ADDR: masterAddr,
      MASTER_PORT: String(masterPort),
    };
    if (baseEnv.OMP_NUM_THREADS === undefined) env.OMP_NUM_THREADS = String(threads);
    const child = spawn(
      process.execPath,
      [...(options.execArgv ?? []), options.script, ...(options.args ?? [])],
      {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const entry = { rank, localRank, child, tail: [] as string[] };
    forwardLines(child.stdout, (line) => emit(rank, 'stdout', line));
    forwardLines(child.stderr, (line) => {
      entry.tail.push(line);
      if (entry.tail.length > TAIL_LINES) entry.tail.shift();
      emit(rank, 'stderr', line);
    });
    children.push(entry);
  }

  return new Promise<LaunchResult>((resolve, reject) => {
    const exits: WorkerExit[] = [];
    let failure: SdvpError | undefined;
    const stopOthers = () => {
      for (const { child } of children) {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
          timer.unref();
          child.once('exit', () => clearTimeout(timer));
        }
      }
    };
    const onAbort = () => {
      failure ??= new SdvpError('ERR_SDVP_ABORTED', 'launchWorkers was aborted; every worker was stopped.');
      stopOthers();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    let interrupted = false;
    let stopped: SdvpError | undefined;
    const onInterrupt = () => {
      interrupted = true;
      for (const { child } of children)
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    };
    options.interrupt?.addEventListener('abort', onInterrupt, { once: true });
    for (const entry of children) {
      const { rank, localRank, child } = entry;
      child.once('error', (error) => {
        failure ??= new SdvpError(
          'ERR_SDVP_DIST_WORKER',
          `worker rank ${rank} could not start: ${error.message}`,
          {
            cause: error,
          },
        );
        stopOthers();
      });
      child.once('close', (code, signal) => {
        exits.push({ rank, localRank, pid: child.pid ?? -1, code, signal });
        if (interrupted && code === INTERRUPTED_EXIT_CODE) {
          stopped ??= new SdvpError('ERR_SDVP_ABORTED', 'The workers stopped on the interrupt.');
        } else if ((code !== 0 || signal !== null) && failure === undefined) {
          const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code}`;
          const tail = entry.tail.length > 0 ? `; its last stderr lines:\n${entry.tail.join('\n')}` : '';
          failure = new SdvpError(
            'ERR_SDVP_DIST_WORKER',
            `worker rank ${rank} (local rank ${localRank}, pid ${child.pid}) ${how}; the other ${children.length - 1} worker(s) on this machine were stopped${tail}`,
            { field: `rank ${rank}` },
          );
          stopOthers();
        }
        if (exits.length === children.length) {
          options.signal?.removeEventListener('abort', onAbort);
          options.interrupt?.removeEventListener('abort', onInterrupt);
          exits.sort((a, b) => a.rank - b.rank);
          if (failure ?? stopped) reject(failure ?? stopped);
          else resolve({ masterPort, workers: exits });
        }
      });
    }
  });
}
