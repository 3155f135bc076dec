// Conversions between Float32Array and bf16 bits in a Uint16Array (round to nearest even, NaN kept).

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Rounds each float to bf16 (round to nearest even; NaN stays NaN) and returns the bits. */
export function float32ToBf16(values: Float32Array | readonly number[]): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    f32[0] = values[i];
    const bits = u32[0];
    if (Number.isNaN(f32[0])) {
      out[i] = 0x7fc0;
      continue;
    }
    out[i] = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

/** Widens bf16 bits to floats (exact). */
export function bf16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const view = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) view[i] = bits[i] << 16;
  return out;
}
