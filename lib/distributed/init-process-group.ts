// initProcessGroup: starts this process's member of a c10d process group, from options or from
// torchrun's environment variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).

import { createHash } from 'node:crypto';
import { SdvpError, argError } from '../errors/sdvp-error';
import { toSdvpError, torchBinding } from '../models/torch-runtime';
import type { NativeProcessGroupConfig } from '../native/native-torch-binding';
import { type DistributedBackend, ProcessGroup } from './process-group';

export interface ProcessGroupOptions {
  /** `'gloo'` (CPU tensors, default) or `'nccl'` (CUDA tensors; needs a LibTorch built with NCCL). */
  backend?: DistributedBackend;
  /** This process's rank; default RANK. Without RANK and WORLD_SIZE: a one-process group. */
  rank?: number;
  /** Default WORLD_SIZE. */
  worldSize?: number;
  /** The rank within this machine (NCCL's CUDA device); default LOCAL_RANK, else 0. */
  localRank?: number;
  /** The address of rank 0, which hosts the rendezvous store; default MASTER_ADDR, else 127.0.0.1. */
  masterAddr?: string;
  /** Its port; default MASTER_PORT, else 29500 (0 for a one-process group: any free port). */
  masterPort?: number;
  /** How long each collective waits for the other ranks (ms); default 600000. */
  timeoutMs?: number;
  /** How long the start waits for the store and every rank (ms); default timeoutMs. */
  rendezvousTimeoutMs?: number;
  /**
   * Any text identifying the run's configuration (e.g. its config file): ranks started with different
   * fingerprints fail at start with ERR_SDVP_DIST_CONFIG. Default: not compared.
   */
  fingerprint?: string;
  /** Where the torchrun variables are read from; default process.env. */
  env?: Record<string, string | undefined>;
}

export const DEFAULT_TIMEOUT_MS = 600_000;
export const DEFAULT_MASTER_PORT = 29500;

/** An integer option, else the environment variable, else `fallback`. */
function integerSetting(
  field: string,
  value: unknown,
  envName: string,
  env: Record<string, string | undefined>,
  fallback: number | undefined,
  min: number,
  max: number,
): number {
  const fromEnv = env[envName];
  const source = value !== undefined ? field : envName;
  const raw =
    value !== undefined ? value : fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) : fallback;
  if (raw === undefined) {
    throw new SdvpError('ERR_SDVP_ARG', `${field} is needed: pass options.${field} or set ${envName}.`, {
      field,
      expected: `options.${field} or ${envName}`,
      received: 'neither',
    });
  }
  const expected = `an integer in [${min}, ${max}]`;
  if (typeof raw !== 'number' || !Number.isInteger(raw)) {
    throw argError('ERR_SDVP_ARG', source, expected, value !== undefined ? value : fromEnv);
  }
  if (raw < min || raw > max) throw argError('ERR_SDVP_RANGE', source, expected, raw);
  return raw;
}

/** A timeout option: an integer number of milliseconds in [100, 2³¹). */
function milliseconds(field: string, value: unknown, fallback: number): number {
  const raw = value ?? fallback;
  const expected = 'an integer number of milliseconds in [100, 2^31)';
  if (typeof raw !== 'number') throw argError('ERR_SDVP_ARG', field, expected, raw);
  if (!Number.isInteger(raw) || raw < 100 || raw > 2 ** 31 - 1)
    throw argError('ERR_SDVP_RANGE', field, expected, raw);
  return raw;
}

/** The group's configuration from the options and the environment, every field checked. */
export function resolveProcessGroupOptions(options: ProcessGroupOptions = {}): NativeProcessGroupConfig {
  if (typeof options !== 'object' || options === null)
    throw argError('ERR_SDVP_ARG', 'options', 'an object', options);
  const env = options.env ?? process.env;
  const backend = options.backend ?? 'gloo';
  if (backend !== 'gloo' && backend !== 'nccl')
    throw argError('ERR_SDVP_OPTION', 'backend', "'gloo' or 'nccl'", backend);
  const launched =
    options.rank !== undefined ||
    options.worldSize !== undefined ||
    env.RANK !== undefined ||
    env.WORLD_SIZE !== undefined;
  const worldSize = integerSetting(
    'worldSize',
    options.worldSize,
    'WORLD_SIZE',
    env,
    launched ? undefined : 1,
    1,
    1 << 20,
  );
  const rank = integerSetting('rank', options.rank, 'RANK', env, launched ? undefined : 0, 0, 1 << 20);
  if (rank >= worldSize) {
    throw argError(
      'ERR_SDVP_RANGE',
      options.rank !== undefined ? 'rank' : 'RANK',
      `a rank in [0, ${worldSize})`,
      rank,
    );
  }
  const localRank = integerSetting('localRank', options.localRank, 'LOCAL_RANK', env, 0, 0, 1 << 20);
  const masterAddr = options.masterAddr ?? (env.MASTER_ADDR || '127.0.0.1');
  if (typeof masterAddr !== 'string' || masterAddr.length === 0)
    throw argError('ERR_SDVP_ARG', 'masterAddr', 'a host name or address', masterAddr);
  const defaultPort = worldSize === 1 ? 0 : DEFAULT_MASTER_PORT;
  const masterPort = integerSetting(
    'masterPort',
    options.masterPort,
    'MASTER_PORT',
    env,
    defaultPort,
    0,
    65535,
  );
  if (masterPort === 0 && worldSize > 1) {
    throw argError(
      'ERR_SDVP_RANGE',
      'masterPort',
      'a port in [1, 65535] (0 only for a one-process group)',
      0,
    );
  }
  const timeoutMs = milliseconds('timeoutMs', options.timeoutMs, DEFAULT_TIMEOUT_MS);
  const rendezvousTimeoutMs = milliseconds('rendezvousTimeoutMs', options.rendezvousTimeoutMs, timeoutMs);
  if (options.fingerprint !== undefined && typeof options.fingerprint !== 'string')
    throw argError('ERR_SDVP_ARG', 'fingerprint', 'a string', options.fingerprint);
  const fingerprint =
    options.fingerprint === undefined
      ? ''
      : createHash('sha256').update(options.fingerprint).digest('hex').slice(0, 16);
  // Under torchrun's static rendezvous its agent hosts the store; the workers' keys are per restart.
  const agentStore = env.TORCHELASTIC_USE_AGENT_STORE === 'True';
  const restartCount = agentStore
    ? integerSetting('restartCount', undefined, 'TORCHELASTIC_RESTART_COUNT', env, 0, 0, 1 << 20)
    : 0;
  return {
    backend,
    rank,
    worldSize,
    localRank,
    masterAddr,
    masterPort,
    timeoutMs,
    rendezvousTimeoutMs,
    fingerprint,
    agentStore,
    restartCount,
  };
}

/**
 * Joins this process to a process group: rank 0 hosts a TCPStore at masterAddr:masterPort and every rank
 * meets there, as PyTorch's `init_process_group(backend, init_method="tcp://...")` does — so PyTorch
 * (1.13) ranks can be members too. Rejects with ERR_SDVP_DIST_PORT (rank 0's port is in use),
 * ERR_SDVP_DIST_CONFIG (ranks disagree on worldSize, backend or fingerprint; a rank started twice),
 * ERR_SDVP_DIST_TIMEOUT (ranks missing when timeoutMs ran out, named), ERR_SDVP_NO_NCCL / ERR_SDVP_NO_GLOO.
 */
export async function initProcessGroup(options: ProcessGroupOptions = {}): Promise<ProcessGroup> {
  const config = resolveProcessGroupOptions(options);
  const native = new (torchBinding().TorchProcessGroup)();
  try {
    await native.init(config);
  } catch (error) {
    throw toSdvpError(error);
  }
  return new ProcessGroup(native, { ...config, masterPort: native.info().port });
}

/** Which distributed backends this build has. */
export function distributedBackends(): { gloo: boolean; nccl: boolean } {
  return torchBinding().distributedBackends();
}
