/**
 * Least-recently-used order over objects the caller already holds (CacheFirst's requests): each
 * held node has a slot; a `Map` finds a key's slot, and two `Int32Array`s link the slots from the
 * oldest to the newest, so that a use relinks a slot instead of deleting and re-adding its key (a
 * `Map` delete and set cost about five lookups and rehash the table now and then). The links live
 * in typed arrays, not in the nodes, so that relinking a node touches a few compact arrays rather
 * than its two neighbours, wherever they lie in the heap (a cache miss each in a large working
 * set).
 *
 * Not lru-cache, which the memory store uses: a bundle that imports only a strategy keeps the
 * memory store's dependency out (issue 12's lean bundles).
 *
 * @internal
 */
export interface Node {
  readonly key: string
  /** Its slot while it is held, −1 otherwise. */
  slot: number
}

const none = -1

/** @internal */
export class Recency<N extends Node> {
  private readonly slots = new Map<string, number>()
  private readonly nodes: Array<N | undefined> = []
  private readonly free: Array<number> = []
  private older = new Int32Array(64)
  private newer = new Int32Array(64)
  private oldest = none
  private newest = none

  get size(): number {
    return this.slots.size
  }

  /** The node held at `key`, its place unchanged. */
  peek(key: string): N | undefined {
    const slot = this.slots.get(key)
    return slot === undefined ? undefined : this.nodes[slot]
  }

  /** The node held at `key`, made the most recently used. */
  use(key: string): N | undefined {
    const slot = this.slots.get(key)
    if (slot === undefined) return undefined
    this.toNewest(slot)
    return this.nodes[slot]
  }

  /** `node`, which is held, made the most recently used (without looking its key up). */
  refresh(node: N): void {
    if (node.slot !== none) this.toNewest(node.slot)
  }

  /** `node` becomes its key's node, the most recently used (replacing the one held before). */
  set(node: N): void {
    const held = this.slots.get(node.key)
    if (held !== undefined) {
      const before = this.nodes[held]!
      if (before !== node) before.slot = none
      this.nodes[held] = node
      node.slot = held
      this.toNewest(held)
      return
    }
    const slot = this.free.length > 0 ? this.free.pop()! : this.nodes.length
    if (slot >= this.older.length) this.grow()
    this.nodes[slot] = node
    node.slot = slot
    this.slots.set(node.key, slot)
    this.append(slot)
  }

  delete(key: string): boolean {
    const slot = this.slots.get(key)
    if (slot === undefined) return false
    this.remove(slot)
    return true
  }

  /** Removes the least recently used nodes until at most `capacity` remain, oldest first. */
  trim(capacity: number): Array<N> {
    const evicted: Array<N> = []
    while (this.slots.size > capacity && this.oldest !== none) {
      evicted.push(this.remove(this.oldest))
    }
    return evicted
  }

  clear(): void {
    for (const slot of this.slots.values()) this.nodes[slot]!.slot = none
    this.slots.clear()
    this.nodes.length = 0
    this.free.length = 0
    this.oldest = this.newest = none
  }

  keys(): IterableIterator<string> {
    return this.slots.keys()
  }

  *entries(): IterableIterator<[string, N]> {
    for (const [key, slot] of this.slots) yield [key, this.nodes[slot]!]
  }

  /** The keys from the least to the most recently used (for tests). */
  order(): Array<string> {
    const keys: Array<string> = []
    for (let slot = this.oldest; slot !== none; slot = this.newer[slot]!) keys.push(this.nodes[slot]!.key)
    return keys
  }

  private remove(slot: number): N {
    const node = this.nodes[slot]!
    this.slots.delete(node.key)
    this.unlink(slot)
    this.nodes[slot] = undefined
    this.free.push(slot)
    node.slot = none
    return node
  }

  private toNewest(slot: number): void {
    if (slot === this.newest) return
    this.unlink(slot)
    this.append(slot)
  }

  private unlink(slot: number): void {
    const older = this.older[slot]!
    const newer = this.newer[slot]!
    if (older === none) this.oldest = newer
    else this.newer[older] = newer
    if (newer === none) this.newest = older
    else this.older[newer] = older
  }

  private append(slot: number): void {
    this.older[slot] = this.newest
    this.newer[slot] = none
    if (this.newest === none) this.oldest = slot
    else this.newer[this.newest] = slot
    this.newest = slot
  }

  private grow(): void {
    const older = new Int32Array(this.older.length * 2)
    const newer = new Int32Array(this.newer.length * 2)
    older.set(this.older)
    newer.set(this.newer)
    this.older = older
    this.newer = newer
  }
}
