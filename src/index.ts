/** norma-rt: the package root. Re-exports only. */
export { Kernel, type BootOptions } from './kernel.js';
export { Task, inheritanceName, type AllocateOptions, type CreateOptions, type TaskCreateOptions } from './task.js';
export type { Mach, MachIpc, TaskInfoOut, VmRegionOut } from './mach.js';
export { PortRight, type TaskIpcMach } from './shared/ipc-facade.js';
export type {
  MachMsgReceived, MachMsgSend, OolDescriptor, PortDescriptor, ReceivedPort,
} from './shared/message.js';
export { Ledger } from './actors/kern/ledger.js';
export type { TaskContext } from './shared/context.js';
export { KernError, krName } from './shared/errors.js';
export type { PagerInfo, RegionInfo, TaskBasicInfo } from './shared/protocol.js';
export type { NodeId, SecurityToken, TaskId } from './shared/types.js';
export * from './shared/constants.js';
