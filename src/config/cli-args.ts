import { parseArgs, type ParseArgsConfig } from 'node:util'
import { ferryError } from '../errors'

type Options = NonNullable<ParseArgsConfig['options']>

/**
 * Strict option parsing for a `ferry <command>`: unknown options, missing values and
 * positionals are refused by name as FERRY_ERR_INVALID_ARG, prefixed with the command,
 * so every command reports bad arguments the same way.
 */
export function parseCommandOptions<T extends Options> (command: string, argv: string[], options: T): ReturnType<typeof parseArgs<{ args: string[], strict: true, allowPositionals: false, options: T }>>['values'] {
  try {
    return parseArgs({ args: argv, strict: true, allowPositionals: false, options }).values
  } catch (err) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `ferry ${command}: ${(err as Error).message}`, { cause: err })
  }
}
