// Configuration resources: Kubernetes-style YAML documents (Istio's and Ferry's security
// API groups), validated against one schema per kind and admitted object by object (one
// bad object affects only itself, and what Ferry cannot enforce is applied in a form that
// allows no more than written), from a directory that is watched for changes.

export * from './documents'
export { ConfigError, type ConfigIssue, type FieldPath, formatIssue, formatPath } from './issues'
export { ConfigAdmission, admitDocuments, type AdmitOptions } from './admission'
export { buildSnapshot, refusedIssues, loadResourceDirectory, readConfigFiles, listConfigFiles, type ConfigFile } from './loader'
export { type ObjectReport, type ObjectState, type InForce, ReportChanges } from './reports'
export { CONFIG_DEFAULTS, type ConfigSnapshot, type SourceDocument, emptySnapshot } from './snapshot'
export { ConfigDirectoryWatcher, CONFIG_WATCH_DEFAULTS, type ConfigListener, type ConfigWatcherOptions } from './watcher'
export { ConfigMetrics, CONFIG_METRIC_NAMES } from './metrics'
export { validateResource } from './validate'
