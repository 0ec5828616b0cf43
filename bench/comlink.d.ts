/**
 * Types for comlink's ESM build. comlink 4.4.2 ships `dist/esm/*.d.ts` but no `.d.mts`, so under
 * NodeNext the `.mjs` entry points have no declarations; borrow the ones it does ship. (Those
 * `.d.ts` files count as CommonJS, so a re-exported `default` would be the module object: the
 * adapter's default export is declared here instead.)
 */
declare module 'comlink/dist/esm/comlink.mjs' {
  export * from 'comlink/dist/esm/comlink.js';
}

declare module 'comlink/dist/esm/node-adapter.mjs' {
  import type { Endpoint } from 'comlink/dist/esm/protocol.js';
  import type { NodeEndpoint } from 'comlink/dist/esm/node-adapter.js';
  export type { NodeEndpoint };
  export default function nodeEndpoint(nep: NodeEndpoint): Endpoint;
}
