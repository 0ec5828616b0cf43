/** norma-rt: the package root. Re-exports only. */
export { Kernel, type BootOptions } from './kernel.js';
export type { ClusterOptions, ClusterProcessStatistics } from './cluster/options.js';
export { Task, inheritanceName, type AllocateOptions, type CreateOptions, type TaskCreateOptions } from './task.js';
export type { Mach, MachIpc, TaskInfoOut, VmRegionOut } from './mach.js';
export { PortRight, type TaskIpcMach } from './shared/ipc-facade.js';
export type {
  MachMsgReceived, MachMsgSend, OolDescriptor, PortDescriptor, ReceivedPort,
} from './shared/message.js';
export { Ledger } from './actors/kern/ledger.js';
export type { MachMsgTrap, TaskContext, ThreadContext, ViewType, WaitResult } from './shared/context.js';
export { Thread } from './thread.js';
export type { ThreadMach, ThreadBasicInfoOut } from './shared/thread-facade.js';
export * from './shared/thread-types.js';
export { Barrier, BARRIER_BYTES } from './shared/barrier.js';
export { KernError, krName } from './shared/errors.js';
export type { ExceptionPortsReply, PagerInfo, RegionInfo, TaskBasicInfo, TaskExit } from './shared/protocol.js';
export * from './shared/exc-wire.js';
export * from './shared/kobject-wire.js';
export type { NodeId, SecurityToken, TaskId } from './shared/types.js';
export * from './shared/constants.js';
