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
    await h5.ready;
    return h5;
  })();
  return loading;
}
