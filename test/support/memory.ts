// Resident memory and open files of a process: the peak (VmHWM), the figure the memory budgets are stated
// in, and the current figures, for tests that check nothing grows.

import { readdirSync, readFileSync } from 'node:fs'

const statusField = (pid: number | 'self', field: string): number => {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return match ? Math.round(Number(match[1]) / 1024) : NaN
}

export function peakRssMb(pid: number | 'self' = 'self'): number {
  return statusField(pid, 'VmHWM')
}

export function rssMb(pid: number | 'self' = 'self'): number {
  return statusField(pid, 'VmRSS')
}

export function openFiles(pid: number | 'self' = 'self'): number {
  return readdirSync(`/proc/${pid}/fd`).length
}
