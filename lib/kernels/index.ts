// The kernels area: the fused distillation objective and its types.
export { distillLoss, distillLossAsync } from './distill-loss';
export type * from './distill-loss-types';
export { bf16ToFloat32, float32ToBf16 } from './bf16';
