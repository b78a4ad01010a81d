// The input layouts of the libFuzzer targets (native/fuzz/fuzz_input.h), and
// each target's input run through the addon's JavaScript entry points, so
// that the committed regression inputs are also checked by `npm test`,
// without clang.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { native, type FrameOptions, type IntegratorOptions } from '../../daemon/native';
import { repoRoot } from '../helpers/data';

export const FUZZ_DIR = path.join(repoRoot, 'native', 'fuzz');
export const REGRESSIONS_DIR = path.join(FUZZ_DIR, 'regressions');

/** Targets whose input is [selector][output size, u24 LE] payload. */
const PREFIXED = new Set(['byte_offset_avx2', 'byte_offset_scalar', 'lz4_block', 'lz4_framed', 'bslz4']);
export const TARGETS = ['cbf', 'cbf_integrate', ...PREFIXED];

export function prefixed(selector: number, outSize: number, payload: Uint8Array): Buffer {
  if (!(outSize >= 0 && outSize < 2 ** 24)) throw new RangeError(`output size ${outSize} does not fit 24 bits`);
  return Buffer.concat([Buffer.from([selector, outSize & 0xff, (outSize >> 8) & 0xff, outSize >> 16]), payload]);
}

interface Prefixed {
  selector: number;
  outSize: number;
  payload: Uint8Array;
}

function splitPrefix(input: Uint8Array): Prefixed | null {
  if (input.length < 4) return null;
  return { selector: input[0]!, outSize: input[1]! | (input[2]! << 8) | (input[3]! << 16), payload: input.subarray(4) };
}

/** The synthetic pixel-to-bin map and frame options of native/fuzz/cbf_integrate.cc. */
function integrateCbf(input: Uint8Array): void {
  if (input.length < 18) return;
  const mapSel = input[0]!;
  const frameSel = input[1]!;
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const limit = view.getFloat64(2, true);
  const threshold = view.getFloat64(10, true);
  const cbf = input.subarray(18);
  let npix = 64;
  try {
    npix = native.cbfLocate(cbf).elements;
  } catch {
    // any size works for a file that the locator rejects
  }
  if (mapSel & 0x80) npix++;
  npix = Math.max(npix, 2);
  const pos0 = new Float64Array(npix);
  const pos1 = new Float64Array(npix);
  const mask = new Uint8Array(npix);
  const norm = new Float32Array(npix);
  for (let i = 0; i < npix; i++) {
    pos0[i] = ((i * 7919) % 1009) * 0.01;
    pos1[i] = ((i * 31) % 360) * (Math.PI / 180) - Math.PI;
    mask[i] = i % 7 === 3 ? 1 : 0;
    norm[i] = 0.5 + (i % 5) * 0.25;
  }
  pos0[0] = 0;
  pos0[1] = 10;
  mask[0] = mask[1] = 0;
  const o: IntegratorOptions = { pos0, bins0: 1 + 9 * ((mapSel >> 4) & 7) };
  if (mapSel & 1) o.dpos0 = new Float64Array(npix).fill(0.37);
  if (mapSel & 2) {
    o.pos1 = pos1;
    if (mapSel & 1) o.dpos1 = new Float64Array(npix).fill(0.05);
    o.bins1 = 5;
  }
  if (mapSel & 4) o.mask = mask;
  if (mapSel & 8) o.norm = norm;
  const f: FrameOptions = {};
  if (frameSel & 1) f.litThreshold = threshold;
  if (frameSel & 2) f.maxValid = limit;
  if (frameSel & 4) (f.dummy = 7), (f.deltaDummy = 0.5);
  if (frameSel & 8) f.dark = new Float32Array(npix).fill(0.5);
  if (frameSel & 16) f.empty = -1;
  new native.Integrator(o).integrateCbf(cbf, f);
}

/**
 * Runs one fuzz input of `target` through the addon: 'result' when it
 * decodes, 'error' with the message when the addon throws an Error. Anything
 * else (a thrown non-Error, an unknown target) throws.
 */
export function replay(target: string, input: Uint8Array): { outcome: 'result' | 'error'; message?: string } {
  const run = (): void => {
    if (target === 'cbf') {
      native.cbfLocate(input);
      native.cbfDecode(input);
      return;
    }
    if (target === 'cbf_integrate') return integrateCbf(input);
    if (!PREFIXED.has(target)) throw new TypeError(`unknown fuzz target '${target}'`);
    const p = splitPrefix(input);
    if (!p) return;
    if (target.startsWith('byte_offset_')) native.byteOffsetDecode(p.payload, Math.min(p.outSize, p.payload.length + 1));
    else if (target === 'lz4_block') native.lz4Decode(p.payload, new Uint8Array(p.outSize), false);
    else if (target === 'lz4_framed') native.lz4Decode(p.payload, new Uint8Array(p.outSize), true);
    else native.bslz4Decode(p.payload, new Uint8Array(p.outSize), 1 << (p.selector & 3));
  };
  try {
    run();
    return { outcome: 'result' };
  } catch (err) {
    if (err instanceof TypeError && /unknown fuzz target/.test(err.message)) throw err;
    if (err instanceof Error && err.message.length > 0) return { outcome: 'error', message: err.message };
    throw new Error(`${target}: the addon threw something that is not an Error: ${String(err)}`);
  }
}

export interface RegressionInput {
  target: string;
  name: string;
  file: string;
}

/** Every committed regression input, as native/fuzz/regressions/<target>/<name>. */
export function regressionInputs(): RegressionInput[] {
  if (!existsSync(REGRESSIONS_DIR)) return [];
  return readdirSync(REGRESSIONS_DIR)
    .sort()
    .flatMap((target) =>
      readdirSync(path.join(REGRESSIONS_DIR, target))
        .sort()
        .map((name) => ({ target, name, file: path.join(REGRESSIONS_DIR, target, name) })),
    );
}

// As a script: replays every regression input and prints one JSON line each,
// then the peak resident memory, so a test can run them in a child process
// with another kernel (BEAMEDGE_KERNELS=scalar) and see what they cost.
if (require.main === module) {
  for (const r of regressionInputs()) {
    const { outcome } = replay(r.target, readFileSync(r.file));
    process.stdout.write(JSON.stringify({ target: r.target, name: r.name, outcome }) + '\n');
  }
  process.stdout.write(JSON.stringify({ maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) }) + '\n');
}
