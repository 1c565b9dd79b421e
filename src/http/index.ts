// The HTTP engine: per-request proxying where L7 applies (docs/l7.md, "Per-request proxying").

export { HttpEngine, type HttpEngineOptions, type HttpEngineDeps } from './engine'
export { type HttpDownstream, type UpstreamTarget, type RequestAuthorizer, type NormalizePath, type NormalizedPath, type HttpVersion } from './context'
export { HTTP_LIMIT_DEFAULTS, resolveHttpLimits, type HttpLimits } from './options'
export { createHttpRefusals, createDetectCounter, HTTP_REFUSED_METRIC, L7_DETECTED_METRIC, NO_REFUSALS, type HttpRefusals, type HttpRefusalReason, type DetectOutcome } from './refusals'
export { NO_REQUEST_TELEMETRY, NO_TRACING } from './defaults'
export { sniff, classify, type SniffResult } from './sniff'
