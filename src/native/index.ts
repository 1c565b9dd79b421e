// The only door from the rest of Ferry to the native addon.
export { REPO_ROOT, NATIVE_ADDON_PATH } from './binding'
export { Netns, openNetns, socketNetnsCookie, type Family, type NetnsListenOptions } from './netns'
export { connectInNetns, type ConnectInNetnsOptions } from './connect-in-netns'
export { tcpListen, type TcpListenOptions } from './listen'
export { BpfObject, BpfLink, closeFd, type BpfObjectOptions } from './bpf-object'
export { BpfMap, UPDATE_FLAGS, type Codec, type UpdateMode } from './bpf-map'
export { ensureBpffsDir, isOnBpffs } from './bpffs'
export type { NativeLinkInfo, NativeMapInfo, NativeProgramInfo } from './native'
