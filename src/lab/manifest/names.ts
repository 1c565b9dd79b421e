// Kubernetes name formats (k8s.io/apimachinery/pkg/util/validation), which the API
// server checks and the OpenAPI schemas do not.

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/
const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]?[a-z0-9])*$/
const ENV_VAR_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/

export type NameFormat = 'dns1123-label' | 'dns1123-subdomain' | 'dns1035-label' | 'port-name' | 'env-name'

/** null when `name` is valid, else why not. */
export function nameProblem (name: string, format: NameFormat): string | null {
  switch (format) {
    case 'dns1123-label':
      return name.length <= 63 && DNS1123_LABEL.test(name) ? null : 'must be a DNS-1123 label: at most 63 characters of a-z, 0-9 and \'-\', starting and ending with a letter or digit'
    case 'dns1123-subdomain':
      return name.length <= 253 && DNS1123_SUBDOMAIN.test(name) ? null : 'must be a DNS-1123 subdomain: lowercase letters, digits, \'-\' and \'.\', at most 253 characters'
    case 'dns1035-label':
      return name.length <= 63 && DNS1035_LABEL.test(name) ? null : 'must be a DNS-1035 label: at most 63 characters of a-z, 0-9 and \'-\', starting with a letter'
    case 'port-name':
      return name.length <= 15 && IANA_SVC_NAME.test(name) && /[a-z]/.test(name) && !name.includes('--') ? null : 'must be an IANA service name: at most 15 characters of a-z, 0-9 and \'-\', with a letter, no "--"'
    case 'env-name':
      return ENV_VAR_NAME.test(name) ? null : 'must be a valid environment variable name'
  }
}
