// Shared fixtures of the teacher tests: sub-task instances with given hashes.

import type { SubTaskInstance } from '../../lib/program/sub-tasks';

export function fakeInstance(hash: string, module = 'VQA'): SubTaskInstance {
  return {
    hash,
    framework: 'visprog',
    module,
    subTask: module === 'LOC' ? 'grounding' : 'vqa',
    input: { image: { ref: 'images/x.png#00', box: [0, 0, 8, 8] }, text: 'What digit is this?', args: {} },
    programId: 'p',
    stepId: 0,
    line: 1,
  };
}
