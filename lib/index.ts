// sdvp's public API: stepwise distillation of visual programs (kernels, models, programs, data, teachers, runs, distributed).
export * from './kernels';
export { capabilities } from './capabilities';
export type { Capabilities } from './capabilities';
export { SdvpError } from './errors/sdvp-error';
export type { SdvpErrorCode, SdvpErrorDetails } from './errors/sdvp-error';
export { loadNative } from './native/load-native';
export * from './program';
export * from './models';
export * from './distributed';
export * from './data';
export * from './teachers';
export * from './curriculum';
export * from './run';
