/**
 * The timeslice of a node's task code. A kernel call that need not wait completes in microtasks
 * (or synchronously, mach_msg_trap), so threads passing messages on one node could run call
 * after call without the node ever returning to its event loop: host calls, other nodes'
 * traffic and timers would starve. After SLICE kernel calls in one event-loop turn, the next
 * awaitable call waits for a macrotask turn (setImmediate), as a timeslice ends, and the
 * synchronous trap answers "interrupted" so its caller takes the awaitable path.
 */
const SLICE = 256;
let callsThisTurn = 0;
let turnEndArmed = false;

function turnEnded(): void {
  callsThisTurn = 0;
  turnEndArmed = false;
}

/** Counts a call; false once the slice is used up (the call must yield first). */
export function sliceLeft(): boolean {
  if (!turnEndArmed) {
    turnEndArmed = true;
    setImmediate(turnEnded);
  }
  return ++callsThisTurn < SLICE;
}

/** The next macrotask turn: where a call waits once the slice is used up. */
export function nextTurn(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}
