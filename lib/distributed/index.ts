// The distributed area: process groups over PyTorch's c10d (Gloo, NCCL), their collectives, and a
// torchrun-style launcher for worker processes.
export { ProcessGroup, MAX_OBJECT_BYTES } from './process-group';
export type { DistributedBackend, ReduceOpName } from './process-group';
export {
  initProcessGroup,
  resolveProcessGroupOptions,
  distributedBackends,
  DEFAULT_MASTER_PORT,
  DEFAULT_TIMEOUT_MS,
} from './init-process-group';
export type { ProcessGroupOptions } from './init-process-group';
export { launchWorkers } from './launch';
export type { LaunchOptions, LaunchResult, WorkerExit } from './launch';
export { findFreePort } from './free-port';
