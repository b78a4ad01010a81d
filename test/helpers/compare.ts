// Relative agreement between our profile and a reference, bin by bin.

export interface Agreement {
  bins: number;
  within: (tol: number) => number;
  fraction: (tol: number) => number;
  worst: number;
  worstBin: number;
}

function relError(a: number, b: number): number {
  if (a === b) return 0;
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);
}

/** Per-bin error is the larger of the relative errors over the given pairs of arrays; bins where `include` is false are skipped. */
export function agreement(pairs: [ArrayLike<number>, ArrayLike<number>][], include: (i: number) => boolean): Agreement {
  const errors: number[] = [];
  let worst = 0;
  let worstBin = -1;
  const n = pairs[0]![1].length;
  for (let i = 0; i < n; i++) {
    if (!include(i)) continue;
    const e = Math.max(...pairs.map(([ours, ref]) => relError(ours[i]!, ref[i]!)));
    errors.push(e);
    if (e > worst) {
      worst = e;
      worstBin = i;
    }
  }
  const within = (tol: number) => errors.filter((e) => e <= tol).length;
  return { bins: errors.length, within, fraction: (tol) => within(tol) / errors.length, worst, worstBin };
}

export function readColumns(text: string): number[][] {
  const rows = text
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('#'))
    .map((l) => l.trim().split(/\s+/).map(Number));
  return rows[0]!.map((_, c) => rows.map((r) => r[c]!));
}
