// h5wasm (HDF5 compiled to WebAssembly; installs from npm alone) is an ES
// module: CommonJS reaches it through a dynamic import, loaded once, and only
// when something asks for HDF5. Its Node build reads and writes the real file
// system directly (NODERAWFS), so paths are ordinary paths.
import type * as H5 from 'h5wasm' with { 'resolution-mode': 'import' };

export type H5Wasm = typeof H5;

let loading: Promise<H5Wasm> | undefined;

export function loadH5(): Promise<H5Wasm> {
  loading ??= (async () => {
    const h5 = (await import('h5wasm/node')) as unknown as H5Wasm;
    const m = await h5.ready;
    // HDF5 errors become exceptions carrying the error stack, instead of text printed to stderr (the journal) by the library.
    m.activate_throwing_error_handler();
    return h5;
  })();
  return loading;
}

/** The most specific line of an HDF5 error stack (the deepest "in FUNC(): what" entry), or the message's first line. */
export function h5Message(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  const lines = [...text.matchAll(/in (\w+)\(\): (.+)$/gm)];
  const last = lines[lines.length - 1];
  return last ? `${last[2]!.trim()} (HDF5 ${last[1]})` : text.split('\n')[0]!;
}
