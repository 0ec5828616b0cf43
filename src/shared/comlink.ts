/**
 * comlink, imported from its ESM build: the package has no `exports` map and its `main` is a
 * UMD bundle, so Node's ESM loader would not see its named exports.
 */
// XXX: comlink 4.4 ships .d.ts beside .mjs files, which NodeNext resolution does not pair;
// the types are re-declared from its d.ts. https://github.com/GoogleChromeLabs/comlink/issues/635
// @ts-expect-error -- no .d.mts for comlink's ESM build
import * as comlinkModule from 'comlink/dist/esm/comlink.mjs';
// @ts-expect-error -- no .d.mts for comlink's node adapter
import nodeEndpointModule from 'comlink/dist/esm/node-adapter.mjs';
import type * as ComlinkTypes from 'comlink/dist/esm/comlink.js';
import type * as NodeAdapterTypes from 'comlink/dist/esm/node-adapter.js';

const comlink = comlinkModule as typeof ComlinkTypes;
export const expose = comlink.expose;
export const wrap = comlink.wrap;
export const releaseProxy: typeof ComlinkTypes.releaseProxy = comlink.releaseProxy;
export type Remote<T> = ComlinkTypes.Remote<T>;
export const nodeEndpoint = nodeEndpointModule as (endpoint: NodeAdapterTypes.NodeEndpoint) => ComlinkTypes.Endpoint;
