import type { SoakOptions } from './main'

/** The 10-minute controller outage across the first renewal; true when every guarantee held. */
export async function runCaOutage (_o: SoakOptions): Promise<boolean> {
  throw new Error('the ca-outage scenario is not built yet')
}
