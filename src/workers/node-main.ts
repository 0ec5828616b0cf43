/**
 * A node's worker entry: waits for its NodeStartup, builds the node kernel, exposes it over
 * comlink and answers NodeReady. Imports shared/ and actors/ only, never host code.
 */
import { parentPort } from 'node:worker_threads';
import { NodeKernel } from '../actors/node-kernel.js';
import { expose, nodeEndpoint } from '../shared/comlink.js';
import type { NodeReady, NodeStartup } from '../shared/protocol.js';

if (parentPort === null) throw new Error('norma: node-main must run in a worker thread');
const port = parentPort;

port.once('message', (startup: NodeStartup) => {
  if (startup.op !== 'startup') throw new Error(`norma: expected startup, got ${String(startup.op)}`);
  const kernel = new NodeKernel(startup);
  expose(kernel, nodeEndpoint(port));
  const ready: NodeReady = { op: 'ready', node: startup.node };
  port.postMessage(ready);
});
