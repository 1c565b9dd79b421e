import type { SoakOptions } from './main'

/** The mixed soak through the shop lab; true when every guarantee held. */
export async function runMixed (_o: SoakOptions): Promise<boolean> {
  throw new Error('the mixed scenario is not built yet')
}
