/**
 * The cross-node half of a fork (NodeAdopt / NodeAdopted): a taskFork whose child lives on
 * another node leaves its parent's node as a task image, sent straight to the child's node,
 * which builds the child and answers the host. Both ends are here, with the images sent and not
 * yet adopted, and what becomes of them when the child's node dies first.
 *
 * The node's wiring (workers/node-main.ts) builds it over the node kernel (HandoffKernel) and
 * the node's links (HandoffLinks), and tells it when a peer dies.
 */
import type { ForkReply, NodeAdopt, NodeAdopted, NodeCall, NodeFault, NodeReturn, NodeToNode, ReleasingReply, TaskImage } from '../../shared/protocol.js';
import type { MemoryObjectName, NodeId, TaskId } from '../../shared/types.js';
import { KERN_FAILURE, KERN_NODE_DOWN } from '../../shared/constants.js';

type Answer = (message: NodeReturn | NodeFault) => void;

/** What the handoff needs of the node kernel (NodeKernel's own routines). */
export interface HandoffKernel {
  teleportSettled(parent: TaskId, built: boolean): MemoryObjectName[];
  imageRelease(image: TaskImage): ReleasingReply;
  /** Objects whose last reference went here, to their home pagers (the node's one release path). */
  handOn(objects: readonly MemoryObjectName[]): void;
}

/** What the handoff needs of the node's links to its peers (workers/links.ts). */
export interface HandoffLinks {
  post(node: NodeId, message: NodeToNode): void;
  reaches(node: NodeId): boolean;
  isDown(node: NodeId): boolean;
}

/**
 * An image sent to another node and not yet adopted there, with the word that decides who owns
 * its references (NodeAdopt.claim) and, for a teleport, the parent set aside.
 */
interface Unadopted {
  readonly node: NodeId;
  readonly image: TaskImage;
  readonly claim: Int32Array;
  readonly parent: TaskId | undefined;
  /** The child's node answers through this node (NodeAdopted), which then forgets the image. */
  readonly answered: boolean;
}

const CLAIM_ADOPTED = 1;
const CLAIM_ABANDONED = 2;

export class ForkHandoff {
  readonly #kernel: HandoffKernel;
  readonly #links: HandoffLinks;
  readonly #toHost: Answer;
  /**
   * By fork call id. If their node dies first, their references are dropped here, so its crash
   * leaks no memory. A plain fork's child node sends no NodeAdopted (one postMessage, a thread
   * wake-up, less per fork): its entry goes once its claim word shows it adopted (sweep).
   */
  readonly #unadopted = new Map<number, Unadopted>();
  /** Forks made by task code here (forwardHere), by their ids: negative, so never a host call's. */
  readonly #here = new Map<number, Answer>();
  #nextHere = -1;

  constructor(kernel: HandoffKernel, links: HandoffLinks, toHost: Answer) {
    this.#kernel = kernel;
    this.#links = links;
    this.#toHost = toHost;
  }

  /**
   * Parent's node: sends a captured image to the child's node, which answers call `id` (see
   * NodeAdopt): to the host, or for a teleport through this node, which terminates the parent
   * first. False when `reply` is no image for another node (the host gets it as it is).
   */
  forward(id: number, reply: ForkReply, answerHere = false): boolean {
    if (reply.image === undefined || reply.childNode === undefined) return false;
    const node = reply.childNode;
    if (!this.#links.reaches(node)) return false;
    this.#sweep();
    const claim = new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT);
    const adopt: NodeToNode = {
      op: 'adopt', id, image: reply.image, released: reply.released ?? [], claim, teleport: reply.teleported !== undefined,
      ...(answerHere ? { answerHere } : {}),
    };
    // Kept without its buffers: dropping its references needs only the names, and an entry
    // may outlive its child's adoption until the next sweep.
    const image = { ...reply.image, buffers: [] };
    this.#unadopted.set(id, { node, image, claim: new Int32Array(claim), parent: reply.teleported, answered: reply.teleported !== undefined || answerHere });
    if (this.#links.isDown(node)) this.peerDown(node);
    else this.#links.post(node, adopt);
    return true;
  }

  /**
   * Child's node: claims the image and runs taskAdopt through `run`, whose answer goes to the
   * host, or for a teleport (or a fork task code made) back to the parent's node. Nothing when
   * the parent's node gave the image up first (it thought this node dead, and dropped the
   * references).
   */
  adopt(from: NodeId, message: NodeAdopt, run: (call: NodeCall, answer: Answer) => void): void {
    if (Atomics.compareExchange(new Int32Array(message.claim), 0, 0, CLAIM_ADOPTED) !== 0) return;
    run({ op: 'call', id: message.id, method: 'taskAdopt', args: [message.image, message.released] },
      message.teleport || message.answerHere === true
        ? (answer) => this.#links.post(from, { op: 'adopted', id: message.id, answer })
        : this.#toHost);
  }

  /** Parent's node: forgets the plain forks whose child's node has claimed the image (see #unadopted). */
  #sweep(): void {
    for (const [id, pending] of this.#unadopted) {
      if (!pending.answered && Atomics.load(pending.claim, 0) === CLAIM_ADOPTED) this.#unadopted.delete(id);
    }
  }

  /** Parent's node: the child's node built the child; a teleport's answer is completed here. */
  adopted(message: NodeAdopted): void {
    const pending = this.#unadopted.get(message.id);
    this.#unadopted.delete(message.id);
    if (message.answer === undefined) return;
    if (pending?.parent !== undefined) this.#teleported(pending.parent, message.answer);
    else this.#answer(message.answer);
  }

  /**
   * Parent's node: sends the image of a fork that task code here made (context.mach) to its
   * child's node, whose answer comes back here instead of to the host; the promise settles with
   * it, or KERN_NODE_DOWN when that node dies first. Undefined when `reply` is no image for a
   * node this one reaches (the caller releases it).
   */
  forwardHere(reply: ForkReply): Promise<ForkReply> | undefined {
    const id = this.#nextHere--;
    const answered = new Promise<NodeReturn | NodeFault>((resolve) => this.#here.set(id, resolve));
    if (!this.forward(id, reply, true)) {
      this.#here.delete(id);
      return undefined;
    }
    return answered.then((answer) => answer.op === 'return' ? answer.result as ForkReply : { kr: KERN_FAILURE });
  }

  /** An answer to fork call `id`: to the task code here that made it, else to the host. */
  #answer(answer: NodeReturn | NodeFault): void {
    const waiter = this.#here.get(answer.id);
    this.#here.delete(answer.id);
    (waiter ?? this.#toHost)(answer);
  }

  /**
   * The child's node answered a teleport: with a child built, the parent is terminated and what
   * that released joins the answer; otherwise the parent is back. The host hears only then, so
   * its next call naming the parent finds it terminated (or still there).
   */
  #teleported(parent: TaskId, answer: NodeReturn | NodeFault): void {
    const result = answer.op === 'return' ? answer.result as ForkReply : undefined;
    const released = this.#kernel.teleportSettled(parent, result?.child !== undefined);
    this.#answer(result?.child === undefined ? answer
      : { op: 'return', id: answer.id, result: { ...result, released: [...(result.released ?? []), ...released] } });
  }

  /**
   * A peer node died (its host already failed the calls waiting on it). The images it never
   * claimed are dropped here, objects homed elsewhere going to their pagers directly; a
   * teleport's parent comes back unless the child's node had begun to build the child (the task
   * moved and died with that node). The node kernel's own sweep (NodeKernel.nodeDown) follows.
   */
  peerDown(peer: NodeId): void {
    for (const [id, pending] of this.#unadopted) {
      if (pending.node !== peer) continue;
      this.#unadopted.delete(id);
      const abandoned = Atomics.compareExchange(pending.claim, 0, 0, CLAIM_ABANDONED) === 0;
      const released = pending.parent === undefined ? [] : this.#kernel.teleportSettled(pending.parent, !abandoned);
      if (abandoned) released.push(...this.#kernel.imageRelease(pending.image).released);
      this.#kernel.handOn(released);
      // The host fails its own calls on a node's death; those made here are failed here.
      if (this.#here.has(id)) this.#answer({ op: 'return', id, result: { kr: KERN_NODE_DOWN } });
    }
  }
}
