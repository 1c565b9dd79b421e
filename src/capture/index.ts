export { Capture, type CaptureOptions } from './capture'
export type { PodCaptureSpec } from './pod-spec'
