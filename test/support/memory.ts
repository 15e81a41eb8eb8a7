// Peak resident memory of this process (VmHWM), the figure the memory budgets are stated in.

import { readFileSync } from 'node:fs'

export function peakRssMb(pid: number | 'self' = 'self'): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return match ? Math.round(Number(match[1]) / 1024) : NaN
}
