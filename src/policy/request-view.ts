// What an AuthorizationPolicy's L7 conditions see of one HTTP request, at the destination
// (src/http/ builds it; src/policy/ matches it). `path` is already normalized by the
// configured normalization (src/http/normalize-path.ts): it is what the application
// receives, and what `paths`/`notPaths` match.

export interface RequestView {
  /** The request method as sent ('GET'). */
  readonly method: string
  /** The normalized path, without the query string. */
  readonly path: string
  /** The Host / :authority, as sent. */
  readonly host: string
  /** A request header by lower-case name; several values joined with ','. Undefined when absent. */
  header (name: string): string | undefined
}
