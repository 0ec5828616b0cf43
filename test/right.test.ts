import { describe, expect, it } from 'vitest';
import {
  KERN_INVALID_ARGUMENT, KERN_INVALID_NAME, KERN_INVALID_RIGHT, KERN_INVALID_VALUE, KERN_NO_SPACE,
  KERN_NOT_IN_SET, KERN_RESOURCE_SHORTAGE, KERN_SUCCESS, KERN_UREFS_OVERFLOW, MACH_MSG_TYPE_COPY_SEND,
  MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_MSG_TYPE_MOVE_RECEIVE,
  MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_MOVE_SEND_ONCE, MACH_MSG_TYPE_PORT_NAME,
  MACH_NOTIFY_DEAD_NAME, MACH_NOTIFY_PORT_DELETED, MACH_PORT_DEAD, MACH_PORT_NULL,
  MACH_PORT_RIGHT_DEAD_NAME, MACH_PORT_RIGHT_PORT_SET, MACH_PORT_RIGHT_RECEIVE,
  MACH_PORT_RIGHT_SEND, MACH_PORT_RIGHT_SEND_ONCE, MACH_PORT_TYPE_DEAD_NAME,
  MACH_PORT_TYPE_DNREQUEST, MACH_PORT_TYPE_PORT_SET, MACH_PORT_TYPE_RECEIVE,
  MACH_PORT_TYPE_SEND, MACH_PORT_TYPE_SEND_ONCE, MACH_PORT_UREFS_MAX,
} from '../src/shared/constants.js';
import { krName } from '../src/shared/errors.js';
import type { PortOps, SpaceNotification } from '../src/actors/ipc/ipc-types.js';
import { NameSpace } from '../src/actors/ipc/name-space.js';
import { PortRights } from '../src/actors/ipc/right.js';
import type { RightInTransit } from '../src/shared/message.js';
import type { PortId, PortName } from '../src/shared/types.js';
import { destroyRightInTransit } from '../src/actors/ipc/right-edit.js';

type Call = [string, ...number[]];

/** Records every port effect, and makes ports with ids from 100 up. */
class RecordingOps implements PortOps {
  readonly calls: Call[] = [];
  next = 100;
  refuse = false;
  createPort(): PortId | undefined {
    if (this.refuse) return undefined;
    const id = this.next++ as PortId;
    this.calls.push(['createPort', id]);
    return id;
  }
  createPortSet(): PortId | undefined {
    if (this.refuse) return undefined;
    const id = this.next++ as PortId;
    this.calls.push(['createPortSet', id]);
    return id;
  }
  destroyPortSet(set: PortId): void { this.calls.push(['destroyPortSet', set]); }
  setMembership(port: PortId, set: PortId | null): void {
    this.calls.push(['setMembership', port, set ?? MACH_PORT_NULL]);
  }
  makeSend(port: PortId): void { this.calls.push(['makeSend', port]); }
  copySend(port: PortId): void { this.calls.push(['copySend', port]); }
  releaseSend(port: PortId): void { this.calls.push(['releaseSend', port]); }
  makeSendOnce(port: PortId): void { this.calls.push(['makeSendOnce', port]); }
  releaseSendOnce(port: PortId): void { this.calls.push(['releaseSendOnce', port]); }
  clearReceiver(port: PortId): void { this.calls.push(['clearReceiver', port]); }
  destroyReceive(port: PortId): void { this.calls.push(['destroyReceive', port]); }
  dnrequestArm(port: PortId): void { this.calls.push(['dnrequestArm', port]); }
  dnrequestCancel(port: PortId): void { this.calls.push(['dnrequestCancel', port]); }
  notify(id: SpaceNotification, notify: PortId, name: PortName): void {
    this.calls.push(['notify', id, notify, name]);
  }
}

function setup(maxEntries?: number) {
  const ops = new RecordingOps();
  const space = new NameSpace(maxEntries === undefined ? {} : { maxEntries });
  const rights = new PortRights(space, ops);
  return { ops, space, rights };
}

/** Every name with its type bits and its refs for each right: what a rejected call must keep. */
function snapshot(rights: PortRights) {
  const { names, types } = rights.names();
  return names.map((name, i) => ({
    name, type: types[i],
    refs: [0, 1, 2, 3, 4].map((right) => rights.getRefs(name, right).refs),
    members: rights.getSetStatus(name).members,
  }));
}

/** Runs `call`, expects `kr`, and checks that neither the space nor any port was touched. */
function expectRejected(env: ReturnType<typeof setup>, kr: number, call: () => { kr: number }) {
  const before = snapshot(env.rights);
  const calls = env.ops.calls.length;
  expect(krName(call().kr)).toBe(krName(kr));
  expect(snapshot(env.rights)).toEqual(before);
  expect(env.ops.calls.length).toBe(calls);
  env.space.verify();
}

function ok<T extends { kr: number }>(result: T): T {
  expect(krName(result.kr)).toBe('KERN_SUCCESS');
  return result;
}

function receiveRight(env: ReturnType<typeof setup>): { name: PortName; port: PortId } {
  const { name } = ok(env.rights.allocate(MACH_PORT_RIGHT_RECEIVE));
  return { name, port: env.space.lookup(name)!.port! };
}

/** A send right with `urefs` references to a fresh port held only by another space. */
function sendRight(env: ReturnType<typeof setup>, urefs = 1): { name: PortName; port: PortId } {
  const port = (900 + env.space.size) as PortId;
  const { name } = ok(env.rights.copyout({ kind: 'send', portId: port }));
  if (urefs > 1) ok(env.rights.modRefs(name, MACH_PORT_RIGHT_SEND, urefs - 1));
  return { name, port };
}

const guessed = 0x4242 as PortName;

describe('mach_port_allocate', () => {
  it('returns KERN_SUCCESS and a receive right on a new port with one ref', () => {
    const env = setup();
    const { name, port } = receiveRight(env);
    expect(env.rights.type(name)).toEqual({ kr: KERN_SUCCESS, type: MACH_PORT_TYPE_RECEIVE });
    expect(env.rights.getRefs(name, MACH_PORT_RIGHT_RECEIVE).refs).toBe(1);
    expect(env.ops.calls).toEqual([['createPort', port]]);
    env.space.verify();
  });

  it('returns KERN_SUCCESS and an empty port set', () => {
    const env = setup();
    const { name } = ok(env.rights.allocate(MACH_PORT_RIGHT_PORT_SET));
    expect(env.rights.type(name).type).toBe(MACH_PORT_TYPE_PORT_SET);
    expect(env.rights.getSetStatus(name)).toEqual({ kr: KERN_SUCCESS, members: [] });
    expect(env.ops.calls).toEqual([['createPortSet', 100]]);
  });

  it('returns KERN_SUCCESS and a dead name with one uref, touching no port', () => {
    const env = setup();
    const { name } = ok(env.rights.allocate(MACH_PORT_RIGHT_DEAD_NAME));
    expect(env.rights.type(name).type).toBe(MACH_PORT_TYPE_DEAD_NAME);
    expect(env.rights.getRefs(name, MACH_PORT_RIGHT_DEAD_NAME).refs).toBe(1);
    expect(env.ops.calls).toEqual([]);
  });

  it('hands out distinct names that are neither MACH_PORT_NULL nor MACH_PORT_DEAD', () => {
    const env = setup();
    const names = Array.from({ length: 50 }, () => ok(env.rights.allocate(MACH_PORT_RIGHT_RECEIVE)).name);
    expect(new Set(names).size).toBe(50);
    for (const name of names) expect([MACH_PORT_NULL, MACH_PORT_DEAD]).not.toContain(name);
  });

  it.each([MACH_PORT_RIGHT_SEND, MACH_PORT_RIGHT_SEND_ONCE, 5, -1, 1.5])(
    'returns KERN_INVALID_VALUE for right %s and changes nothing', (right) => {
      const env = setup();
      receiveRight(env);
      expectRejected(env, KERN_INVALID_VALUE, () => env.rights.allocate(right));
    });

  it('returns KERN_NO_SPACE when the space is full and makes no port', () => {
    const env = setup(1);
    receiveRight(env);
    expectRejected(env, KERN_NO_SPACE, () => env.rights.allocate(MACH_PORT_RIGHT_RECEIVE));
    expectRejected(env, KERN_NO_SPACE, () => env.rights.allocate(MACH_PORT_RIGHT_DEAD_NAME));
  });

  it('returns KERN_RESOURCE_SHORTAGE when no port can be made and changes nothing', () => {
    const env = setup();
    receiveRight(env);
    env.ops.refuse = true;
    expectRejected(env, KERN_RESOURCE_SHORTAGE, () => env.rights.allocate(MACH_PORT_RIGHT_RECEIVE));
    expectRejected(env, KERN_RESOURCE_SHORTAGE, () => env.rights.allocate(MACH_PORT_RIGHT_PORT_SET));
  });
});

describe('mach_port_deallocate', () => {
  it('drops one uref from a send right and releases the right at zero', () => {
    const env = setup();
    const { name, port } = sendRight(env, 2);
    ok(env.rights.deallocate(name));
    expect(env.rights.getRefs(name, MACH_PORT_RIGHT_SEND).refs).toBe(1);
    expect(env.ops.calls).toEqual([]);
    ok(env.rights.deallocate(name));
    expect(env.rights.type(name).kr).toBe(KERN_INVALID_NAME);
    expect(env.ops.calls).toEqual([['releaseSend', port]]);
    env.space.verify();
  });

  it('keeps the receive right under the name when the last send uref goes', () => {
    const env = setup();
    const { name, port } = receiveRight(env);
    ok(env.rights.copyout(ok(env.rights.copyin(name, MACH_MSG_TYPE_MAKE_SEND)).right!));
    expect(env.rights.type(name).type).toBe(MACH_PORT_TYPE_SEND | MACH_PORT_TYPE_RECEIVE);
    ok(env.rights.deallocate(name));
    expect(env.rights.type(name).type).toBe(MACH_PORT_TYPE_RECEIVE);
    expect(env.ops.calls.slice(-1)).toEqual([['releaseSend', port]]);
    env.space.verify();
  });

  it('destroys a send-once right and its port gets a send-once notification', () => {
    const env = setup();
    const { name: rcv, port } = receiveRight(env);
    const so = ok(env.rights.copyout(ok(env.rights.copyin(rcv, MACH_MSG_TYPE_MAKE_SEND_ONCE)).right!)).name;
    ok(env.rights.deallocate(so));
    expect(env.rights.type(so).kr).toBe(KERN_INVALID_NAME);
    expect(env.ops.calls.slice(-1)).toEqual([['releaseSendOnce', port]]);
  });

  it('drops urefs from a dead name and frees it at zero', () => {
    const env = setup();
    const { name } = ok(env.rights.allocate(MACH_PORT_RIGHT_DEAD_NAME));
    ok(env.rights.modRefs(name, MACH_PORT_RIGHT_DEAD_NAME, 1));
    ok(env.rights.deallocate(name));
    expect(env.rights.getRefs(name, MACH_PORT_RIGHT_DEAD_NAME).refs).toBe(1);
    ok(env.rights.deallocate(name));
    expect(env.rights.names().names).toEqual([]);
  });

  it('returns KERN_INVALID_RIGHT for a receive right or a port set and changes nothing', () => {
    const env = setup();
    const { name } = receiveRight(env);
    const set = ok(env.rights.allocate(MACH_PORT_RIGHT_PORT_SET)).name;
    expectRejected(env, KERN_INVALID_RIGHT, () => env.rights.deallocate(name));
    expectRejected(env, KERN_INVALID_RIGHT, () => env.rights.deallocate(set));
  });

  it('returns KERN_INVALID_NAME (GNU Mach) for a guessed or freed name and changes nothing', () => {
    const env = setup();
    const { name } = sendRight(env);
    ok(env.rights.deallocate(name));
    sendRight(env);
    expectRejected(env, KERN_INVALID_NAME, () => env.rights.deallocate(guessed));
    expectRejected(env, KERN_INVALID_NAME, () => env.rights.deallocate(name));
    expectRejected(env, KERN_INVALID_NAME, () => env.rights.deallocate(MACH_PORT_NULL as PortName));
  });
});

describe('mach_port_destroy', () => {
  it('destroys a receive right: the name is freed and the port dies', () => {
    const env = setup();
    const { name, port } = receiveRight(env);
    ok(env.rights.destroy(name));
    expect(env.rights.names().names).toEqual([]);
    expect(env.ops.calls.slice(1)).toEqual([['destroyReceive', port]]);
  });

  it('releases the send right before the port dies when both share the name', () => {
    const env = setup();
    const { name, port } = receiveRight(env);
    ok(env.rights.copyout(ok(env.rights.copyin(name, MACH_MSG_TYPE_MAKE_SEND)).right!));
    env.ops.calls.length = 0;
    ok(env.rights.destroy(name));
    expect(env.ops.calls).toEqual([['releaseSend', port], ['destroyReceive', port]]);
  });

  it('destroys a port set: members leave it and keep their receive rights', () => {
    const env = setup();
    const set = ok(env.rights.allocate(MACH_PORT_RIGHT_PORT_SET)).name;
    const setId = env.space.lookup(set)!.port!;
    const { name, port } = receiveRight(env);
    ok(env.rights.moveMember(name, set));
    env.ops.calls.length = 0;
    ok(env.rights.destroy(set));
    expect(env.ops.calls).toEqual([['setMembership', port, MACH_PORT_NULL], ['destroyPortSet', setId]]);
    expect(env.rights.type(name).type).toBe(MACH_PORT_TYPE_RECEIVE);
    expect(krName(env.rights.moveMember(name, MACH_PORT_NULL as PortName).kr)).toBe('KERN_NOT_IN_SET');
    env.space.verify();
  });

  it('destroys a send-once right with a send-once notification and frees a dead name', () => {
    const env = setup();
    const { name: rcv, port } = receiveRight(env);
    const so = ok(env.rights.copyout(ok(env.rights.copyin(rcv, MACH_MSG_TYPE_MAKE_SEND_ONCE)).right!)).name;
    const dead = ok(env.rights.allocate(MACH_PORT_RIGHT_DEAD_NAME)).name;
    env.ops.calls.length = 0;
    ok(env.rights.destroy(so));
    ok(env.rights.destroy(dead));
    expect(env.ops.calls).toEqual([['releaseSendOnce', port]]);
    expect(env.rights.names().names).toEqual([rcv]);
  });

  it('sends MACH_NOTIFY_PORT_DELETED to a dead-name request on the destroyed name', () => {
    const env = setup();
    const { name, port } = sendRight(env);
    ok(env.rights.requestDeadName(name, 77 as PortId));
    env.ops.calls.length = 0;
    ok(env.rights.destroy(name));
    expect(env.ops.calls).toEqual([
      ['releaseSend', port], ['dnrequestCancel', port], ['notify', MACH_NOTIFY_PORT_DELETED, 77, name],
    ]);
  });

  it('returns KERN_INVALID_NAME for a guessed name and changes nothing', () => {
    const env = setup();
    receiveRight(env);
    expectRejected(env, KERN_INVALID_NAME, () => env.rights.destroy(guessed));
  });
});

describe('mach_port_mod_refs', () => {
  it('adds and removes send urefs, releasing the right at zero', () => {
    const env = setup();
    const { name, port } = sendRight(env);
    ok(env.rights.modRefs(name, MACH_PORT_RIGHT_SEND, 3));
    expect(env.rights.getRefs(name, MACH_PORT_RIGHT_SEND).refs).toBe(4);
    ok(env.rights.modRefs(name, MACH_PORT_RIGHT_SEND, 0));
    ok(env.rights.modRefs(name, MACH_PORT_RIGHT_SEND, -4));
    expect(env.rights.type(name).kr).toBe(KERN_INVALID_NAME);
    expect(env.ops.calls).toEqual([['releaseSend', port]]);
  });

  it('adds and removes dead-name urefs, freeing the name at zero', () => {
    const env = setup();
    const { name } = ok(env.rights.allocate(MACH_PORT_RIGHT_DEAD_NAME));
    ok(env.rights.modRefs(name, MACH_PORT_RIGHT_DEAD_NAME, MACH_PORT_UREFS_MAX - 1));
    expect(env.rights.getRefs(name, MACH_PORT_RIGHT_DEAD_NAME).refs).toBe(MACH_PORT_UREFS_MAX);
    ok(env.rights.modRefs(name, MACH_PORT_RIGHT_DEAD_NAME, -MACH_PORT_UREFS_MAX));
    expect(env.rights.names().names).toEqual([]);
  });

  it('accepts delta 0 on a receive right and destroys it with delta -1', () => {
    const env = setup();
    const { name, port } = receiveRight(env);
    ok(env.rights.modRefs(name, MACH_PORT_RIGHT_RECEIVE, 0));
    expect(env.rights.type(name).type).toBe(MACH_PORT_TYPE_RECEIVE);
    ok(env.rights.modRefs(name, MACH_PORT_RIGHT_RECEIVE, -1));
    expect(env.rights.names().names).toEqual([]);
    expect(env.ops.calls.slice(1)).toEqual([['destroyReceive', port]]);
  });

  it('turns a send right sharing a destroyed receive right into a dead name with its urefs', () => {
    const env = setup();
    const { name, port } = receiveRight(env);
    for (let i = 0; i < 3; i++) {
      ok(env.rights.copyout(ok(env.rights.copyin(name, MACH_MSG_TYPE_MAKE_SEND)).right!));
    }
    env.ops.calls.length = 0;
    ok(env.rights.modRefs(name, MACH_PORT_RIGHT_RECEIVE, -1));
    expect(env.rights.type(name).type).toBe(MACH_PORT_TYPE_DEAD_NAME);
    expect(env.rights.getRefs(name, MACH_PORT_RIGHT_DEAD_NAME).refs).toBe(3);
    expect(env.ops.calls).toEqual([['destroyReceive', port]]);
    env.space.verify();
  });

  it('fires a dead-name request at once, with one more uref, when that receive right goes', () => {
    const env = setup();
    const { name, port } = receiveRight(env);
    ok(env.rights.copyout(ok(env.rights.copyin(name, MACH_MSG_TYPE_MAKE_SEND)).right!));
    ok(env.rights.requestDeadName(name, 55 as PortId));
    env.ops.calls.length = 0;
    ok(env.rights.modRefs(name, MACH_PORT_RIGHT_RECEIVE, -1));
    expect(env.rights.type(name).type).toBe(MACH_PORT_TYPE_DEAD_NAME);
    expect(env.rights.getRefs(name, MACH_PORT_RIGHT_DEAD_NAME).refs).toBe(2);
    expect(env.ops.calls).toEqual([
      ['destroyReceive', port], ['dnrequestCancel', port], ['notify', MACH_NOTIFY_DEAD_NAME, 55, name],
    ]);
  });

  it('destroys a send-once right or a port set with delta -1', () => {
    const env = setup();
    const { name: rcv, port } = receiveRight(env);
    const so = ok(env.rights.copyout(ok(env.rights.copyin(rcv, MACH_MSG_TYPE_MAKE_SEND_ONCE)).right!)).name;
    const set = ok(env.rights.allocate(MACH_PORT_RIGHT_PORT_SET)).name;
    ok(env.rights.modRefs(so, MACH_PORT_RIGHT_SEND_ONCE, 0));
    ok(env.rights.modRefs(so, MACH_PORT_RIGHT_SEND_ONCE, -1));
    ok(env.rights.modRefs(set, MACH_PORT_RIGHT_PORT_SET, -1));
    expect(env.rights.names().names).toEqual([rcv]);
    expect(env.ops.calls.filter(([op]) => op === 'releaseSendOnce')).toEqual([['releaseSendOnce', port]]);
  });

  it('returns KERN_INVALID_NAME for a guessed name and changes nothing', () => {
    const env = setup();
    sendRight(env);
    expectRejected(env, KERN_INVALID_NAME, () => env.rights.modRefs(guessed, MACH_PORT_RIGHT_SEND, 1));
  });

  it('returns KERN_INVALID_RIGHT when the name does not hold that right and changes nothing', () => {
    const env = setup();
    const { name: rcv } = receiveRight(env);
    const { name: snd } = sendRight(env);
    expectRejected(env, KERN_INVALID_RIGHT, () => env.rights.modRefs(rcv, MACH_PORT_RIGHT_SEND, 1));
    expectRejected(env, KERN_INVALID_RIGHT, () => env.rights.modRefs(snd, MACH_PORT_RIGHT_RECEIVE, -1));
    expectRejected(env, KERN_INVALID_RIGHT, () => env.rights.modRefs(snd, MACH_PORT_RIGHT_DEAD_NAME, 1));
  });

  it('returns KERN_INVALID_VALUE for a negative result, a bad delta or a bad right and changes nothing', () => {
    const env = setup();
    const { name: rcv } = receiveRight(env);
    const { name: snd } = sendRight(env, 2);
    const so = ok(env.rights.copyout(ok(env.rights.copyin(rcv, MACH_MSG_TYPE_MAKE_SEND_ONCE)).right!)).name;
    const set = ok(env.rights.allocate(MACH_PORT_RIGHT_PORT_SET)).name;
    env.ops.calls.length = 0;
    const r = env.rights;
    expectRejected(env, KERN_INVALID_VALUE, () => r.modRefs(snd, MACH_PORT_RIGHT_SEND, -3));
    expectRejected(env, KERN_INVALID_VALUE, () => r.modRefs(snd, MACH_PORT_RIGHT_SEND, 0.5));
    expectRejected(env, KERN_INVALID_VALUE, () => r.modRefs(rcv, MACH_PORT_RIGHT_RECEIVE, 1));
    expectRejected(env, KERN_INVALID_VALUE, () => r.modRefs(rcv, MACH_PORT_RIGHT_RECEIVE, -2));
    expectRejected(env, KERN_INVALID_VALUE, () => r.modRefs(so, MACH_PORT_RIGHT_SEND_ONCE, 1));
    expectRejected(env, KERN_INVALID_VALUE, () => r.modRefs(set, MACH_PORT_RIGHT_PORT_SET, 2));
    expectRejected(env, KERN_INVALID_VALUE, () => r.modRefs(snd, 5, 1));
    expectRejected(env, KERN_INVALID_VALUE, () => r.modRefs(guessed, -1, 1));
  });

  it('returns KERN_UREFS_OVERFLOW past MACH_PORT_UREFS_MAX and changes nothing', () => {
    const env = setup();
    const { name: snd } = sendRight(env, MACH_PORT_UREFS_MAX);
    const dead = ok(env.rights.allocate(MACH_PORT_RIGHT_DEAD_NAME)).name;
    expectRejected(env, KERN_UREFS_OVERFLOW, () => env.rights.modRefs(snd, MACH_PORT_RIGHT_SEND, 1));
    expectRejected(env, KERN_UREFS_OVERFLOW,
      () => env.rights.modRefs(dead, MACH_PORT_RIGHT_DEAD_NAME, MACH_PORT_UREFS_MAX));
  });
});

describe('mach_port_get_refs, mach_port_type and mach_port_names', () => {
  it('reports urefs per right, 1 for one-ref rights and 0 for a right the name lacks', () => {
    const env = setup();
    const { name: rcv } = receiveRight(env);
    const { name: snd } = sendRight(env, 7);
    const so = ok(env.rights.copyout(ok(env.rights.copyin(rcv, MACH_MSG_TYPE_MAKE_SEND_ONCE)).right!)).name;
    const set = ok(env.rights.allocate(MACH_PORT_RIGHT_PORT_SET)).name;
    const refs = (name: PortName) => [0, 1, 2, 3, 4].map((right) => ok(env.rights.getRefs(name, right)).refs);
    expect(refs(rcv)).toEqual([0, 1, 0, 0, 0]);
    expect(refs(snd)).toEqual([7, 0, 0, 0, 0]);
    expect(refs(so)).toEqual([0, 0, 1, 0, 0]);
    expect(refs(set)).toEqual([0, 0, 0, 1, 0]);
  });

  it('returns KERN_INVALID_NAME or KERN_INVALID_VALUE from get_refs', () => {
    const env = setup();
    const { name } = sendRight(env);
    expectRejected(env, KERN_INVALID_NAME, () => env.rights.getRefs(guessed, MACH_PORT_RIGHT_SEND));
    expectRejected(env, KERN_INVALID_VALUE, () => env.rights.getRefs(name, 7));
  });

  it('adds MACH_PORT_TYPE_DNREQUEST to the type while a dead-name request is armed', () => {
    const env = setup();
    const { name } = sendRight(env);
    ok(env.rights.requestDeadName(name, 9 as PortId));
    expect(env.rights.type(name).type).toBe(MACH_PORT_TYPE_SEND + MACH_PORT_TYPE_DNREQUEST);
    expect(env.rights.names().types).toEqual([MACH_PORT_TYPE_SEND + MACH_PORT_TYPE_DNREQUEST]);
    expectRejected(env, KERN_INVALID_NAME, () => env.rights.type(guessed));
  });

  it('lists every name ascending with its type', () => {
    const env = setup();
    const a = receiveRight(env).name;
    const b = ok(env.rights.allocate(MACH_PORT_RIGHT_DEAD_NAME)).name;
    const c = ok(env.rights.allocate(MACH_PORT_RIGHT_PORT_SET)).name;
    expect(env.rights.names()).toEqual({
      kr: KERN_SUCCESS, names: [a, b, c],
      types: [MACH_PORT_TYPE_RECEIVE, MACH_PORT_TYPE_DEAD_NAME, MACH_PORT_TYPE_PORT_SET],
    });
  });
});

describe('mach_port_move_member', () => {
  it('moves a receive right into a set, between sets, and out with MACH_PORT_NULL', () => {
    const env = setup();
    const s1 = ok(env.rights.allocate(MACH_PORT_RIGHT_PORT_SET)).name;
    const s2 = ok(env.rights.allocate(MACH_PORT_RIGHT_PORT_SET)).name;
    const [id1, id2] = [env.space.lookup(s1)!.port!, env.space.lookup(s2)!.port!];
    const { name, port } = receiveRight(env);
    env.ops.calls.length = 0;
    ok(env.rights.moveMember(name, s1));
    expect(env.rights.getSetStatus(s1).members).toEqual([name]);
    ok(env.rights.moveMember(name, s2));
    expect(env.rights.getSetStatus(s1).members).toEqual([]);
    expect(env.rights.getSetStatus(s2).members).toEqual([name]);
    ok(env.rights.moveMember(name, s2));
    ok(env.rights.moveMember(name, MACH_PORT_NULL as PortName));
    expect(env.rights.getSetStatus(s2).members).toEqual([]);
    expect(env.ops.calls).toEqual([
      ['setMembership', port, id1], ['setMembership', port, id2], ['setMembership', port, MACH_PORT_NULL],
    ]);
    env.space.verify();
  });

  it('takes a member out of its set when its receive right is destroyed or moved away', () => {
    const env = setup();
    const set = ok(env.rights.allocate(MACH_PORT_RIGHT_PORT_SET)).name;
    const a = receiveRight(env);
    const b = receiveRight(env);
    ok(env.rights.moveMember(a.name, set));
    ok(env.rights.moveMember(b.name, set));
    ok(env.rights.destroy(a.name));
    expect(env.rights.getSetStatus(set).members).toEqual([b.name]);
    ok(env.rights.copyin(b.name, MACH_MSG_TYPE_MOVE_RECEIVE));
    expect(env.rights.getSetStatus(set).members).toEqual([]);
    expect(env.ops.calls.filter(([op]) => op === 'setMembership').slice(-2)).toEqual([
      ['setMembership', a.port, MACH_PORT_NULL], ['setMembership', b.port, MACH_PORT_NULL],
    ]);
    env.space.verify();
  });

  it('returns KERN_NOT_IN_SET when removing a port that is in no set and changes nothing', () => {
    const env = setup();
    const { name } = receiveRight(env);
    expectRejected(env, KERN_NOT_IN_SET, () => env.rights.moveMember(name, MACH_PORT_NULL as PortName));
  });

  it('returns KERN_INVALID_NAME for an unknown member or set and changes nothing', () => {
    const env = setup();
    const set = ok(env.rights.allocate(MACH_PORT_RIGHT_PORT_SET)).name;
    const { name } = receiveRight(env);
    expectRejected(env, KERN_INVALID_NAME, () => env.rights.moveMember(guessed, set));
    expectRejected(env, KERN_INVALID_NAME, () => env.rights.moveMember(name, guessed));
  });

  it('returns KERN_INVALID_RIGHT for a non-receive member or a non-set target and changes nothing', () => {
    const env = setup();
    const set = ok(env.rights.allocate(MACH_PORT_RIGHT_PORT_SET)).name;
    const { name } = receiveRight(env);
    const { name: snd } = sendRight(env);
    expectRejected(env, KERN_INVALID_RIGHT, () => env.rights.moveMember(snd, set));
    expectRejected(env, KERN_INVALID_RIGHT, () => env.rights.moveMember(set, set));
    expectRejected(env, KERN_INVALID_RIGHT, () => env.rights.moveMember(name, snd));
    expectRejected(env, KERN_INVALID_RIGHT, () => env.rights.getSetStatus(name));
    expectRejected(env, KERN_INVALID_NAME, () => env.rights.getSetStatus(guessed));
  });
});

describe('copyin by disposition', () => {
  it('MAKE_SEND and MAKE_SEND_ONCE leave the receive right in place and tell the port', () => {
    const env = setup();
    const { name, port } = receiveRight(env);
    env.ops.calls.length = 0;
    expect(ok(env.rights.copyin(name, MACH_MSG_TYPE_MAKE_SEND)).right).toEqual({ kind: 'send', portId: port });
    expect(ok(env.rights.copyin(name, MACH_MSG_TYPE_MAKE_SEND_ONCE)).right)
      .toEqual({ kind: 'send-once', portId: port });
    expect(env.rights.type(name).type).toBe(MACH_PORT_TYPE_RECEIVE);
    expect(env.ops.calls).toEqual([['makeSend', port], ['makeSendOnce', port]]);
  });

  it('MOVE_RECEIVE frees a receive-only name and clears the receiver', () => {
    const env = setup();
    const { name, port } = receiveRight(env);
    env.ops.calls.length = 0;
    expect(ok(env.rights.copyin(name, MACH_MSG_TYPE_MOVE_RECEIVE)).right).toEqual({ kind: 'receive', portId: port });
    expect(env.rights.names().names).toEqual([]);
    expect(env.ops.calls).toEqual([['clearReceiver', port]]);
  });

  it('MOVE_RECEIVE leaves the send right under the name it shared', () => {
    const env = setup();
    const { name, port } = receiveRight(env);
    ok(env.rights.copyout(ok(env.rights.copyin(name, MACH_MSG_TYPE_MAKE_SEND)).right!));
    ok(env.rights.copyin(name, MACH_MSG_TYPE_MOVE_RECEIVE));
    expect(env.rights.type(name).type).toBe(MACH_PORT_TYPE_SEND);
    expect(env.space.lookupPort(port)).toBe(name);
    env.space.verify();
  });

  it('COPY_SEND keeps the urefs and makes one more send right', () => {
    const env = setup();
    const { name, port } = sendRight(env, 2);
    expect(ok(env.rights.copyin(name, MACH_MSG_TYPE_COPY_SEND)).right).toEqual({ kind: 'send', portId: port });
    expect(env.rights.getRefs(name, MACH_PORT_RIGHT_SEND).refs).toBe(2);
    expect(env.ops.calls).toEqual([['copySend', port]]);
  });

  it('MOVE_SEND splits one uref off, or moves the last one and frees the name', () => {
    const env = setup();
    const { name, port } = sendRight(env, 2);
    ok(env.rights.copyin(name, MACH_MSG_TYPE_MOVE_SEND));
    expect(env.rights.getRefs(name, MACH_PORT_RIGHT_SEND).refs).toBe(1);
    expect(env.ops.calls).toEqual([['copySend', port]]);
    expect(ok(env.rights.copyin(name, MACH_MSG_TYPE_MOVE_SEND)).right).toEqual({ kind: 'send', portId: port });
    expect(env.rights.names().names).toEqual([]);
    expect(env.ops.calls).toEqual([['copySend', port]]);
  });

  it('MOVE_SEND of the last uref keeps a receive right sharing the name', () => {
    const env = setup();
    const { name } = receiveRight(env);
    ok(env.rights.copyout(ok(env.rights.copyin(name, MACH_MSG_TYPE_MAKE_SEND)).right!));
    ok(env.rights.copyin(name, MACH_MSG_TYPE_MOVE_SEND));
    expect(env.rights.type(name).type).toBe(MACH_PORT_TYPE_RECEIVE);
    env.space.verify();
  });

  it('MOVE_SEND_ONCE frees the name and sends port-deleted to its dead-name request', () => {
    const env = setup();
    const { name: rcv, port } = receiveRight(env);
    const so = ok(env.rights.copyout(ok(env.rights.copyin(rcv, MACH_MSG_TYPE_MAKE_SEND_ONCE)).right!)).name;
    ok(env.rights.requestDeadName(so, 31 as PortId));
    env.ops.calls.length = 0;
    expect(ok(env.rights.copyin(so, MACH_MSG_TYPE_MOVE_SEND_ONCE)).right).toEqual({ kind: 'send-once', portId: port });
    expect(env.rights.type(so).kr).toBe(KERN_INVALID_NAME);
    expect(env.ops.calls).toEqual([['dnrequestCancel', port], ['notify', MACH_NOTIFY_PORT_DELETED, 31, so]]);
  });

  it('a dead name yields a dead right: COPY_SEND keeps its urefs, MOVE_* consume one', () => {
    const env = setup();
    const { name } = ok(env.rights.allocate(MACH_PORT_RIGHT_DEAD_NAME));
    ok(env.rights.modRefs(name, MACH_PORT_RIGHT_DEAD_NAME, 2));
    expect(ok(env.rights.copyin(name, MACH_MSG_TYPE_COPY_SEND)).right).toEqual({ kind: 'dead' });
    expect(env.rights.getRefs(name, MACH_PORT_RIGHT_DEAD_NAME).refs).toBe(3);
    expect(ok(env.rights.copyin(name, MACH_MSG_TYPE_MOVE_SEND)).right).toEqual({ kind: 'dead' });
    expect(ok(env.rights.copyin(name, MACH_MSG_TYPE_MOVE_SEND_ONCE)).right).toEqual({ kind: 'dead' });
    expect(env.rights.getRefs(name, MACH_PORT_RIGHT_DEAD_NAME).refs).toBe(1);
    expect(env.ops.calls).toEqual([]);
  });

  it.each([MACH_MSG_TYPE_PORT_NAME, 22, 0])(
    'returns KERN_INVALID_VALUE for disposition %s and changes nothing', (disposition) => {
      const env = setup();
      const { name } = receiveRight(env);
      expectRejected(env, KERN_INVALID_VALUE, () => env.rights.copyin(name, disposition));
    });

  it('returns KERN_INVALID_NAME for a guessed name and changes nothing', () => {
    const env = setup();
    receiveRight(env);
    expectRejected(env, KERN_INVALID_NAME, () => env.rights.copyin(guessed, MACH_MSG_TYPE_MAKE_SEND));
  });

  it('returns KERN_INVALID_RIGHT when the name lacks the right the disposition needs', () => {
    const env = setup();
    const { name: rcv } = receiveRight(env);
    const { name: snd } = sendRight(env);
    const so = ok(env.rights.copyout(ok(env.rights.copyin(rcv, MACH_MSG_TYPE_MAKE_SEND_ONCE)).right!)).name;
    const set = ok(env.rights.allocate(MACH_PORT_RIGHT_PORT_SET)).name;
    env.ops.calls.length = 0;
    const cases: Array<[PortName, number]> = [
      [snd, MACH_MSG_TYPE_MAKE_SEND], [snd, MACH_MSG_TYPE_MAKE_SEND_ONCE],
      [snd, MACH_MSG_TYPE_MOVE_RECEIVE], [rcv, MACH_MSG_TYPE_COPY_SEND],
      [rcv, MACH_MSG_TYPE_MOVE_SEND], [snd, MACH_MSG_TYPE_MOVE_SEND_ONCE],
      [so, MACH_MSG_TYPE_COPY_SEND], [so, MACH_MSG_TYPE_MOVE_SEND], [set, MACH_MSG_TYPE_MOVE_RECEIVE],
      [set, MACH_MSG_TYPE_COPY_SEND],
    ];
    for (const [name, disposition] of cases) {
      expectRejected(env, KERN_INVALID_RIGHT, () => env.rights.copyin(name, disposition));
    }
  });
});

describe('copyout of a right in transit', () => {
  it('gives a new send right a new name with one uref', () => {
    const env = setup();
    const { name } = ok(env.rights.copyout({ kind: 'send', portId: 5 as PortId }));
    expect(env.rights.type(name).type).toBe(MACH_PORT_TYPE_SEND);
    expect(env.rights.getRefs(name, MACH_PORT_RIGHT_SEND).refs).toBe(1);
    expect(env.ops.calls).toEqual([]);
  });

  it('merges a send right into the name already holding one: one more uref, one right fewer', () => {
    const env = setup();
    const { name, port } = sendRight(env);
    expect(ok(env.rights.copyout({ kind: 'send', portId: port })).name).toBe(name);
    expect(env.rights.getRefs(name, MACH_PORT_RIGHT_SEND).refs).toBe(2);
    expect(env.ops.calls).toEqual([['releaseSend', port]]);
  });

  it('puts a send right under the name of the receive right for its port', () => {
    const env = setup();
    const { name, port } = receiveRight(env);
    env.ops.calls.length = 0;
    expect(ok(env.rights.copyout({ kind: 'send', portId: port })).name).toBe(name);
    expect(env.rights.type(name).type).toBe(MACH_PORT_TYPE_SEND | MACH_PORT_TYPE_RECEIVE);
    expect(env.rights.getRefs(name, MACH_PORT_RIGHT_SEND).refs).toBe(1);
    expect(env.ops.calls).toEqual([]);
  });

  it('puts a receive right under the name of the send right for its port, or a new name', () => {
    const env = setup();
    const { name, port } = sendRight(env, 3);
    expect(ok(env.rights.copyout({ kind: 'receive', portId: port })).name).toBe(name);
    expect(env.rights.type(name).type).toBe(MACH_PORT_TYPE_SEND | MACH_PORT_TYPE_RECEIVE);
    expect(env.rights.getRefs(name, MACH_PORT_RIGHT_SEND).refs).toBe(3);
    const other = ok(env.rights.copyout({ kind: 'receive', portId: 6 as PortId })).name;
    expect(env.rights.type(other).type).toBe(MACH_PORT_TYPE_RECEIVE);
    env.space.verify();
  });

  it('gives each send-once right its own name with exactly one uref', () => {
    const env = setup();
    const { name: rcv, port } = receiveRight(env);
    const a = ok(env.rights.copyout({ kind: 'send-once', portId: port })).name;
    const b = ok(env.rights.copyout({ kind: 'send-once', portId: port })).name;
    expect(new Set([rcv, a, b]).size).toBe(3);
    for (const name of [a, b]) {
      expect(env.rights.type(name).type).toBe(MACH_PORT_TYPE_SEND_ONCE);
      expect(env.rights.getRefs(name, MACH_PORT_RIGHT_SEND_ONCE).refs).toBe(1);
    }
    expect(env.space.namesOfPort(port)).toEqual([rcv, a, b]);
  });

  it('reads a dead right as MACH_PORT_DEAD without making an entry', () => {
    const env = setup();
    expect(ok(env.rights.copyout({ kind: 'dead' })).name).toBe(MACH_PORT_DEAD);
    expect(env.rights.names().names).toEqual([]);
  });

  it('returns KERN_NO_SPACE when a new name is needed in a full space, but still merges', () => {
    const env = setup(1);
    const { name, port } = sendRight(env);
    expectRejected(env, KERN_NO_SPACE, () => env.rights.copyout({ kind: 'send', portId: 1 as PortId }));
    expectRejected(env, KERN_NO_SPACE, () => env.rights.copyout({ kind: 'send-once', portId: port }));
    expect(ok(env.rights.copyout({ kind: 'send', portId: port })).name).toBe(name);
  });

  it('returns KERN_UREFS_OVERFLOW at MACH_PORT_UREFS_MAX and changes nothing, unless pegging', () => {
    const env = setup();
    const { name, port } = sendRight(env, MACH_PORT_UREFS_MAX);
    expectRejected(env, KERN_UREFS_OVERFLOW, () => env.rights.copyout({ kind: 'send', portId: port }));
    expect(ok(env.rights.copyout({ kind: 'send', portId: port }, { pegUrefs: true })).name).toBe(name);
    expect(env.rights.getRefs(name, MACH_PORT_RIGHT_SEND).refs).toBe(MACH_PORT_UREFS_MAX);
    expect(env.ops.calls).toEqual([['releaseSend', port]]);
  });

  it('moves a right from one space to another through copyin and copyout', () => {
    const a = setup();
    const b = setup();
    const { name, port } = receiveRight(a);
    const right: RightInTransit = ok(a.rights.copyin(name, MACH_MSG_TYPE_MAKE_SEND)).right!;
    const there = ok(b.rights.copyout(right)).name;
    expect(b.space.lookupPort(port)).toBe(there);
    expect(a.ops.calls).toEqual([['createPort', port], ['makeSend', port]]);
    expect(b.ops.calls).toEqual([]);
  });
});

describe('port death in a space', () => {
  it('turns send and send-once rights into dead names keeping their urefs', () => {
    const env = setup();
    const port = 44 as PortId;
    const snd = ok(env.rights.copyout({ kind: 'send', portId: port })).name;
    ok(env.rights.modRefs(snd, MACH_PORT_RIGHT_SEND, 4));
    const so = ok(env.rights.copyout({ kind: 'send-once', portId: port })).name;
    const other = sendRight(env);
    expect(env.rights.portDied(port)).toEqual([]);
    expect(env.rights.type(snd).type).toBe(MACH_PORT_TYPE_DEAD_NAME);
    expect(env.rights.getRefs(snd, MACH_PORT_RIGHT_DEAD_NAME).refs).toBe(5);
    expect(env.rights.getRefs(so, MACH_PORT_RIGHT_DEAD_NAME).refs).toBe(1);
    expect(env.rights.type(other.name).type).toBe(MACH_PORT_TYPE_SEND);
    expect(env.space.lookupPort(port)).toBeUndefined();
    expect(env.ops.calls).toEqual([]);
    expect(env.rights.portDied(port)).toEqual([]);
    env.space.verify();
  });

  it('returns the dead-name requests, each name having gained one uref', () => {
    const env = setup();
    const port = 44 as PortId;
    const snd = ok(env.rights.copyout({ kind: 'send', portId: port })).name;
    const so = ok(env.rights.copyout({ kind: 'send-once', portId: port })).name;
    ok(env.rights.requestDeadName(snd, 1 as PortId));
    ok(env.rights.requestDeadName(so, 2 as PortId));
    expect(env.rights.portDied(port)).toEqual([{ name: snd, notify: 1 }, { name: so, notify: 2 }]);
    expect(env.rights.getRefs(snd, MACH_PORT_RIGHT_DEAD_NAME).refs).toBe(2);
    expect(env.rights.getRefs(so, MACH_PORT_RIGHT_DEAD_NAME).refs).toBe(2);
    expect(env.rights.type(snd).type).toBe(MACH_PORT_TYPE_DEAD_NAME);
  });
});

describe('dead-name requests', () => {
  it('registers, replaces and cancels a request, returning the previous one', () => {
    const env = setup();
    const { name, port } = sendRight(env);
    expect(ok(env.rights.requestDeadName(name, 1 as PortId)).previous).toBeNull();
    expect(ok(env.rights.requestDeadName(name, 2 as PortId)).previous).toBe(1);
    expect(ok(env.rights.requestDeadName(name, null)).previous).toBe(2);
    expect(env.rights.type(name).type).toBe(MACH_PORT_TYPE_SEND);
    expect(env.ops.calls).toEqual([['dnrequestArm', port], ['dnrequestCancel', port]]);
  });

  it('fires at once on a dead name when sync is non-zero, and the name gains one uref', () => {
    const env = setup();
    const { name } = ok(env.rights.allocate(MACH_PORT_RIGHT_DEAD_NAME));
    expect(ok(env.rights.requestDeadName(name, 3 as PortId, 1)).previous).toBeNull();
    expect(env.rights.getRefs(name, MACH_PORT_RIGHT_DEAD_NAME).refs).toBe(2);
    expect(env.ops.calls).toEqual([['notify', MACH_NOTIFY_DEAD_NAME, 3, name]]);
  });

  it('returns KERN_INVALID_NAME, KERN_INVALID_RIGHT, KERN_UREFS_OVERFLOW or (sync 0 on a dead name) KERN_INVALID_ARGUMENT and changes nothing', () => {
    const env = setup();
    const set = ok(env.rights.allocate(MACH_PORT_RIGHT_PORT_SET)).name;
    const { name: dead } = ok(env.rights.allocate(MACH_PORT_RIGHT_DEAD_NAME));
    ok(env.rights.modRefs(dead, MACH_PORT_RIGHT_DEAD_NAME, MACH_PORT_UREFS_MAX - 1));
    expectRejected(env, KERN_INVALID_NAME, () => env.rights.requestDeadName(guessed, 1 as PortId));
    expectRejected(env, KERN_INVALID_RIGHT, () => env.rights.requestDeadName(set, 1 as PortId));
    expectRejected(env, KERN_UREFS_OVERFLOW, () => env.rights.requestDeadName(dead, 1 as PortId, 1));
    expectRejected(env, KERN_INVALID_ARGUMENT, () => env.rights.requestDeadName(dead, 1 as PortId));
  });
});

describe('destroyRightInTransit', () => {
  it('kills a receive right, releases a send or send-once right, and ignores a dead one', () => {
    const ops = new RecordingOps();
    const port = 8 as PortId;
    destroyRightInTransit({ kind: 'receive', portId: port }, ops);
    destroyRightInTransit({ kind: 'send', portId: port }, ops);
    destroyRightInTransit({ kind: 'send-once', portId: port }, ops);
    destroyRightInTransit({ kind: 'dead' }, ops);
    expect(ops.calls).toEqual([['destroyReceive', port], ['releaseSend', port], ['releaseSendOnce', port]]);
  });
});
