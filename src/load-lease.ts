// The initial load's record in `checkpoints`, which ties a load to a slot: PostgreSQL gives a slot no identity but
// its name, so the record says whose load the slot of that name is (`loadOwner`), whether it finished
// (`initialLoad`), and, while it runs, until when its owner is known alive (`loadLeaseUntil`, renewed as it loads).
// Guarantees: a process writes `running` only by compare-and-set on the record as it read it, so never over another
// owner's live lease nor over a `done` written since; a slot whose load runs under another owner's live lease is
// waited for, never dropped; only a `running` record whose lease expired (its owner died) means drop and load again;
// `done` is written only by the owner of the load, so a load taken over after its lease expired cannot mark the new
// slot loaded.

import { hostname } from 'node:os'
import type { Checkpoint, MongoSink } from './sinks/mongo.ts'
import { SlotBusy, SlotError } from './replication/slot.ts'

// A load's owner renews its lease this often; another process judges the lease by its own clock, so the lease
// outlasts a few missed renewals (a slow MongoDB, a loaded machine) and any clock skew between hosts NTP leaves.
const LOAD_LEASE_MS = 30_000
const LOAD_RENEW_MS = 5_000

export type LoadLeaseOptions = {
  mongo: Pick<MongoSink, 'readCheckpoint' | 'claimLoad' | 'renewLoad' | 'finishLoad'>
  slot: string
  /** Runs a MongoDB operation until it succeeds. */
  retryMongo(work: () => Promise<void>): Promise<void>
  log: { warn(message: string): void }
}

export type LoadLease = ReturnType<typeof createLoadLease>

export function createLoadLease(options: LoadLeaseOptions) {
  const { mongo, slot, retryMongo } = options
  // Unique to this process's life: a restart on the same host is another owner.
  const owner = `${hostname()}:${process.pid}:${crypto.randomUUID().slice(0, 8)}`
  const leaseUntil = () => new Date(Date.now() + LOAD_LEASE_MS)
  const read = async () => {
    let record: Checkpoint | null = null
    await retryMongo(async () => void (record = await mongo.readCheckpoint(slot)))
    return record as Checkpoint | null
  }
  /** Another process loads the slot and is alive: stand by. */
  const othersLiveLoad = (record: Checkpoint | null) =>
    record?.initialLoad === 'running' && record.loadOwner !== null && record.loadOwner !== owner && (record.loadLeaseUntil?.getTime() ?? 0) > Date.now()
  const busy = (record: Checkpoint) => new SlotBusy(`replication slot ${slot} is being loaded by another process (${record.loadOwner})`)

  return {
    owner,

    /** Of an existing slot no process streams from: true if its load finished; false to drop it and load again. */
    async accept(): Promise<boolean> {
      const record = await read()
      if (record?.initialLoad === 'done') return true
      if (othersLiveLoad(record)) throw busy(record!)
      return false
    },

    /** Before the slot is created: claims the load, or stands by when another process claimed it first. */
    async claim() {
      const record = await read()
      if (othersLiveLoad(record)) throw busy(record!)
      let claimed = false
      await retryMongo(async () => void (claimed = await mongo.claimLoad(slot, owner, leaseUntil(), record)))
      if (!claimed) throw new SlotBusy(`the load record of replication slot ${slot} was written by another process meanwhile`)
    },

    /** Runs the load, renewing the lease until it ends. */
    async whileLoading<T>(load: () => Promise<T>): Promise<T> {
      const renewal = setInterval(() => {
        mongo.renewLoad(slot, owner, leaseUntil()).then(
          (renewed) => renewed || options.log.warn(`the load record of replication slot ${slot} is no longer this process's`),
          (error) => options.log.warn(`the load lease of replication slot ${slot} not renewed: ${error.message}`),
        )
      }, LOAD_RENEW_MS)
      try {
        return await load()
      } catch (error) {
        // Cut short (a stop, a failure): the lease ends now, so that the next start loads again at once rather than
        // wait for it to expire. Only a crash leaves a live lease behind.
        clearInterval(renewal)
        await mongo.renewLoad(slot, owner, new Date(0)).catch(() => {})
        throw error
      } finally {
        clearInterval(renewal)
      }
    },

    /** Records the load done at `lsn`; fails for good if the load is no longer this process's. */
    async finish(lsn: string) {
      let finished = false
      await retryMongo(async () => void (finished = await mongo.finishLoad(slot, owner, lsn)))
      if (!finished)
        throw new SlotError(`the initial load of replication slot ${slot} was taken over by another process (its lease had expired); restart to stand by`)
    },
  }
}
