// Result records in the result ring: [u32 header length][header JSON][pad to 8]
// [arrays, each 8-byte aligned], the header listing each array's type, offset
// and length so the reader can view them without parsing anything else.
import type { ResultArrays, ResultHeader } from './protocol';

type ArrayName = keyof ResultArrays;
const CTORS = { f64: Float64Array, f32: Float32Array, u8: Uint8Array } as const;

interface Layout {
  header: ResultHeader;
  arrays: Record<string, [keyof typeof CTORS, number, number]>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const align8 = (n: number) => (n + 7) & ~7;

export function encodedSize(header: ResultHeader, arrays: ResultArrays): { size: number; write: (target: Uint8Array) => void } {
  const entries = (Object.entries(arrays) as [ArrayName, Float64Array | Float32Array | Uint8Array][]).filter(([, a]) => a);
  const layout: Layout = { header, arrays: {} };
  // Offsets depend on the JSON length, which depends on the offsets: lay the
  // arrays out relative to the end of the header, then shift once.
  let rel = 0;
  for (const [name, a] of entries) {
    layout.arrays[name] = [a instanceof Float64Array ? 'f64' : a instanceof Uint8Array ? 'u8' : 'f32', rel, a.length];
    rel = align8(rel + a.byteLength);
  }
  const json = encoder.encode(JSON.stringify(layout));
  const base = align8(4 + json.length);
  return {
    size: base + rel,
    write(target: Uint8Array) {
      new DataView(target.buffer, target.byteOffset, 4).setUint32(0, json.length, true);
      target.set(json, 4);
      for (const [name, a] of entries) target.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), base + layout.arrays[name]![1]);
    },
  };
}

export function decodeResult(record: Uint8Array): { header: ResultHeader; arrays: ResultArrays } {
  const len = new DataView(record.buffer, record.byteOffset, 4).getUint32(0, true);
  const layout = JSON.parse(decoder.decode(record.subarray(4, 4 + len))) as Layout;
  const base = align8(4 + len);
  const arrays: ResultArrays = {};
  for (const [name, [type, off, n]] of Object.entries(layout.arrays)) {
    const Ctor = CTORS[type];
    // record is a private copy (RecordRing.read slices), aligned at 0 in its buffer.
    (arrays as Record<string, unknown>)[name] = new Ctor(record.buffer as ArrayBuffer, record.byteOffset + base + off, n);
  }
  return { header: layout.header, arrays };
}
