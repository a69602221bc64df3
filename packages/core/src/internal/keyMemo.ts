/**
 * The keys of a strategy's hot single arguments, remembered: a read of `getUser(42)` finds its
 * key without encoding `[42]` or digesting it, and gets the very string it got before (whose
 * hash the engine has cached, so the store's own lookup is cheaper too).
 *
 * Only keys that were read as cached are offered (`remember`), so a scan or a bulk load of cold
 * keys costs nothing here. Bounded by two generations: entries go to the young one; when it holds
 * `generation` entries it becomes the old one (the previous old one is dropped), and an old
 * entry read again moves back to the young one. The working set it holds is between one and two
 * generations; nothing is read twice to evict.
 *
 * @internal
 */
export interface KeyMemo {
  /** The key remembered for `args`, or `undefined`. */
  readonly get: (args: ReadonlyArray<unknown>) => string | undefined
  /** Remembers `key` as the key of `args`, when `args` is a single memoisable argument. */
  readonly remember: (args: ReadonlyArray<unknown>, key: string) => void
  /** The key remembered for one string (a user key function's id), or `undefined`. */
  readonly getString: (arg: string) => string | undefined
  /**
   * Offers `key` as the key of one string just derived: remembered if the string was offered
   * before (the second sighting), else only noted — in a set of at most `seenBound` strings that
   * starts over when full, so that a scan of distinct strings keeps no keys alive. A string longer
   * than the memo remembers is neither noted nor remembered.
   */
  readonly admitString: (arg: string, key: string) => void
}

/** The largest string argument remembered, in UTF-16 code units. */
const maxStringLength = 256

/**
 * One argument whose identity `Map` compares exactly as the key encoding does: a string, or a
 * number other than `-0` (which `Map` takes for `0`, while their keys differ).
 */
const memoisable = (args: ReadonlyArray<unknown>): string | number | undefined => {
  if (args.length !== 1) return undefined
  const arg = args[0]
  if (typeof arg === "number") return arg === 0 && 1 / arg < 0 ? undefined : arg
  if (typeof arg === "string") return arg.length <= maxStringLength ? arg : undefined
  return undefined
}

/** @internal */
export const make = (generation = 131_072, seenBound = 16_384): KeyMemo => {
  let young = new Map<string | number, string>()
  let old = new Map<string | number, string>()
  const put = (arg: string | number, key: string) => {
    if (young.size >= generation) {
      old = young
      young = new Map()
    }
    young.set(arg, key)
  }
  const lookup = (arg: string | number): string | undefined => {
    const key = young.get(arg)
    if (key !== undefined) return key
    const aged = old.get(arg)
    if (aged !== undefined) {
      old.delete(arg)
      put(arg, aged)
    }
    return aged
  }
  const offer = (arg: string | number, key: string) => {
    if (!young.has(arg)) put(arg, key)
  }
  let seen = new Set<string>()
  return {
    get: (args) => {
      const arg = memoisable(args)
      return arg === undefined ? undefined : lookup(arg)
    },
    remember: (args, key) => {
      const arg = memoisable(args)
      if (arg !== undefined) offer(arg, key)
    },
    getString: (arg) => arg.length <= maxStringLength ? lookup(arg) : undefined,
    admitString: (arg, key) => {
      if (arg.length > maxStringLength) return
      if (seen.has(arg)) offer(arg, key)
      else {
        if (seen.size >= seenBound) seen = new Set()
        seen.add(arg)
      }
    }
  }
}
