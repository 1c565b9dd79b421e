// Configuration resources: Kubernetes-style YAML documents (Istio's and Ferry's security
// API groups), validated once against one schema per kind and handed on frozen, from a
// directory that is watched for changes.

export * from './documents'
export { ConfigError, type ConfigIssue, type FieldPath, formatIssue, formatPath } from './issues'
export { buildSnapshot, loadResourceDirectory, readConfigFiles, listConfigFiles, parseResourceText, type ConfigFile, type LoadedResource } from './loader'
export { CONFIG_DEFAULTS, type ConfigSnapshot, emptySnapshot } from './snapshot'
export { ConfigDirectoryWatcher, CONFIG_WATCH_DEFAULTS, type ConfigListener, type ConfigWatcherOptions } from './watcher'
export { ConfigMetrics, CONFIG_METRIC_NAMES } from './metrics'
export { validateResource } from './validate'
