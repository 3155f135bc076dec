// The plain-TypeScript baseline: 0.5·CE + 0.5·τ²·KL(P_T‖P_S), batchmean, forward and gradient, in
// straightforward loops — what one would write without a native kernel.

export function tsLoopDistillLoss(
  student: Float32Array,
  teacher: Float32Array,
  labels: Int32Array,
  rows: number,
  vocab: number,
  tau: number,
  grad: Float32Array,
): number {
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const base = r * vocab;
    let m = Number.NEGATIVE_INFINITY;
    let mt = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < vocab; j++) {
      if (student[base + j] > m) m = student[base + j];
      if (teacher[base + j] > mt) mt = teacher[base + j];
    }
    let sum1 = 0;
    let sumS = 0;
    let sumT = 0;
    for (let j = 0; j < vocab; j++) {
      sum1 += Math.exp(student[base + j] - m);
      sumS += Math.exp((student[base + j] - m) / tau);
      sumT += Math.exp((teacher[base + j] - mt) / tau);
    }
    const lse = m + Math.log(sum1);
    const lseS = m / tau + Math.log(sumS);
    const lseT = mt / tau + Math.log(sumT);
    const y = labels[r];
    let kl = 0;
    for (let j = 0; j < vocab; j++) {
      const logQ = student[base + j] / tau - lseS;
      const logP = teacher[base + j] / tau - lseT;
      const p = Math.exp(logP);
      const q = Math.exp(logQ);
      kl += p * (logP - logQ);
      const soft = Math.exp(student[base + j] - lse);
      grad[base + j] = (0.5 * (soft - (j === y ? 1 : 0)) + 0.5 * tau * (q - p)) / rows;
    }
    total += 0.5 * (lse - student[base + y]) + 0.5 * tau * tau * kl;
  }
  return total / rows;
}
