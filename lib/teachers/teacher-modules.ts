// Teachers as program modules: the "sub-modules replaced by the teachers" system. Each distillable module is
// served by the first teacher bound to it, for every call — a question the teacher was not made for gets
// its best label anyway, which is what that system shows.

import { SdvpError } from '../errors/sdvp-error';
import { microBatched } from '../program/batched-module';
import { type RasterImage, imageReference, isRasterImage } from '../program/image';
import type { ModuleImplementation } from '../program/interpreter';
import { defaultModuleRegistry } from '../program/module-registry';
import { type SubTaskInstance, subTaskHash } from '../program/sub-tasks';
import type { ImageSource, Teacher } from './teacher';
import { isDetection } from './teacher-output';

/** The instance a module call amounts to (image ref and crop box, text). */
export function callInstance(
  module: string,
  args: Record<string, unknown>,
  programId = 'call',
): SubTaskInstance {
  const spec = defaultModuleRegistry().get('visprog', module);
  if (!spec) throw new SdvpError('ERR_SDVP_ARG', `No module '${module}' in the registry.`);
  const image = isRasterImage(args.image) ? imageReference(args.image as RasterImage) : null;
  const textValue = spec.textArgument ? args[spec.textArgument] : undefined;
  const input = { image, text: typeof textValue === 'string' ? textValue : null, args: {} };
  return {
    hash: subTaskHash(spec.name, spec.subTask, input),
    framework: 'visprog',
    module: spec.name,
    subTask: spec.subTask,
    input,
    programId,
    stepId: null,
    line: null,
  };
}

/**
 * Module implementations answered by teachers (micro-batched). Images come from `images` by ref, as when
 * labelling; crops are given to the teacher as the source image plus the crop box.
 */
export function teacherModules(
  teachers: readonly Teacher[],
  images: ImageSource,
  options: { maxBatch?: number } = {},
): Record<string, ModuleImplementation> {
  const modules: Record<string, ModuleImplementation> = {};
  for (const teacher of teachers) {
    const module = teacher.identity.module;
    if (modules[module]) continue;
    const ask = microBatched<SubTaskInstance, unknown>(async (batch) => {
      const outputs = await teacher.label(batch, { images, log: () => {} });
      return outputs.map((output) =>
        isDetection(output) ? output.boxes.map((box) => [...box]) : output.labels[0],
      );
    }, options.maxBatch ?? teacher.batchSize);
    modules[module] = (args) => ask(callInstance(module, args));
  }
  return modules;
}
