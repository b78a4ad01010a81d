// Which configuration keys a reload changed, for the reload event: operators want
// "pipeline.veto.threshold", not a hash. Leaves are compared by value (arrays and
// maps as a whole); values are not reported (they may be credentials).
function leaves(v: unknown, prefix: string, out: Map<string, string>): void {
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0) {
    for (const [k, x] of Object.entries(v)) leaves(x, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.set(prefix, JSON.stringify(v) ?? 'undefined');
  }
}

/** Dotted keys whose values differ between two configurations, sorted. */
export function changedKeys(before: unknown, after: unknown): string[] {
  const a = new Map<string, string>(), b = new Map<string, string>();
  leaves(before, '', a);
  leaves(after, '', b);
  const keys = new Set([...a.keys(), ...b.keys()]);
  return [...keys].filter((k) => a.get(k) !== b.get(k)).sort();
}
