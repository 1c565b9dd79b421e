export { Capture, type CaptureOptions, type ProbeCounts } from './capture'
export type { PodCaptureSpec } from './pod-spec'
