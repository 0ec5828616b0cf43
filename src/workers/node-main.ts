/**
 * A node's worker entry: waits for its NodeStartup, builds the node kernel and its links to the
 * other nodes, answers NodeReady, then serves NodeCalls one message at a time. Only wiring
 * lives here: calls are served by node-call.ts, peers reached through links.ts, a fork's image
 * handed between nodes by fork-handoff.ts. Imports shared/ and actors/ only, never host code.
 */
import { parentPort } from 'node:worker_threads';
import { NodeKernel } from '../actors/kern/node-kernel.js';
import { serializeError } from '../shared/errors.js';
import type { ForkReply, HostToNode, NodeApi, NodeStartup, NodeToHost } from '../shared/protocol.js';
import type { NodeId } from '../shared/types.js';
import { ForkHandoff } from '../actors/kern/fork-handoff.js';
import { NodeLinks, type PeerMessage } from './links.js';
import { serveCall } from './node-call.js';

if (parentPort === null) throw new Error('norma: node-main must run in a worker thread');
const port = parentPort;
const toHost = (message: NodeToHost): void => port.postMessage(message);

interface Node {
  readonly kernel: NodeKernel;
  readonly links: NodeLinks;
  readonly handoff: ForkHandoff;
}
let node: Node | undefined;

function start(startup: NodeStartup): Node {
  const links = new NodeLinks(startup);
  const kernel = new NodeKernel(startup, links);
  const handoff = new ForkHandoff(kernel, links, toHost);
  kernel.forwardHere = (reply) => handoff.forwardHere(reply);
  links.listen({
    message: (from, message) => fromPeer({ kernel, links, handoff }, from, message),
    traffic: (traffic) => kernel.receiveTraffic(traffic),
    places: () => kernel.placesFreed(),
    // The images the dead node never adopted go first: dropping them may settle a teleport's parent.
    down: (peer) => {
      handoff.peerDown(peer);
      kernel.nodeDown(peer);
    },
  });
  return { kernel, links, handoff };
}

function fromPeer({ kernel, links, handoff }: Node, from: NodeId, message: PeerMessage): void {
  switch (message.op) {
    case 'adopt':
      handoff.adopt(from, message, (call, answer) => serveCall(kernel, call, answer));
      return;
    case 'adopted':
      handoff.adopted(message);
      return;
    case 'release':
      kernel.pagerRelease(message.objects);
      return;
    case 'ipc':
      kernel.receiveTraffic(message.traffic);
      return;
    case 'call':
      serveCall(kernel, message, (answer) => links.post(from, answer));
      return;
  }
}

port.on('message', (message: HostToNode) => {
  switch (message.op) {
    case 'call': {
      if (node === undefined) {
        toHost({ op: 'fault', id: message.id, error: serializeError(new Error('node not started')) });
        return;
      }
      const { handoff } = node;
      serveCall(node.kernel, message, toHost, message.method === 'taskFork'
        ? (result) => handoff.forward(message.id, result as ForkReply) : undefined);
      return;
    }
    case 'node-down':
      node?.links.peerDown(message.node);
      return;
    case 'startup':
      node = start(message);
      toHost({ op: 'ready', node: message.node });
      return;
  }
});

export type { NodeApi };
