// A Map that keeps only its `limit` most recently set keys: the bound every
// per-series or per-geometry cache needs, since senders choose series ids and
// geometries and nothing else would stop them growing it.
export class RecentMap<K, V> extends Map<K, V> {
  constructor(
    private readonly limit: number,
    /** Told of each entry dropped to keep the bound. */
    private readonly onEvict?: (key: K, value: V) => void,
  ) {
    super();
  }

  /** Sets the entry as the most recent one (an existing key moves to the end), then drops the oldest beyond the limit. */
  override set(key: K, value: V): this {
    super.delete(key);
    super.set(key, value);
    while (this.size > this.limit) {
      const [oldest, old] = this.entries().next().value!;
      super.delete(oldest);
      this.onEvict?.(oldest, old);
    }
    return this;
  }
}
